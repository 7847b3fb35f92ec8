// Repository CARs cross the implementation boundary both ways:
//  1. a repo written by berth is read and fully verified by @atproto/repo (root, signature,
//     every record's content);
//  2. a repo written by @atproto/repo imports into berth (verified) and re-exports with the
//     same commit, which @atproto/repo verifies again.
import test from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Repo, MemoryBlockstore, WriteOpAction, getFullRepo, verifyRepoCar, readCarWithRoot, cborToLexRecord } from '@atproto/repo'
import { Secp256k1Keypair } from '@atproto/crypto'

const BERTH = process.env.BERTH_BIN
assert.ok(BERTH, 'BERTH_BIN must point at the berth binary (cargo test sets it)')

const berth = (...args) => JSON.parse(execFileSync(BERTH, args, { encoding: 'utf8' }))

function scratch(t) {
  const dir = mkdtempSync(join(tmpdir(), 'berth-interop-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

// A few record shapes: nested objects, arrays, unicode, big and negative integers.
function record(i) {
  return {
    $type: 'app.bsky.feed.post',
    text: `post ${i} — héllo ✨ ${'x'.repeat(i % 50)}`,
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
    langs: ['en', 'fr'].slice(0, 1 + (i % 2)),
    n: i * 7919 - 1_000_000,
    nested: { deep: { list: [i, null, true, { k: 'v' }] } },
  }
}

const concat = async (iter) => {
  const parts = []
  for await (const p of iter) parts.push(p)
  return Buffer.concat(parts)
}

test('a repo written by berth verifies in @atproto/repo', async (t) => {
  const dir = scratch(t)
  const did = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz'
  const init = berth('repo', 'init', '--data-dir', dir, '--did', did)
  assert.match(init.signingKey, /^did:key:zQ3s/)

  // 300 creates, then updates and deletes, in batches of up to 10 ops per commit.
  const expected = new Map()
  const lines = []
  for (let i = 0; i < 300; i++) {
    const collection = i % 3 === 0 ? 'app.bsky.feed.like' : 'app.bsky.feed.post'
    const rkey = `rk${String(i).padStart(6, '0')}`
    lines.push({ action: 'create', collection, rkey, record: record(i) })
    expected.set(`${collection}/${rkey}`, record(i))
  }
  for (let i = 0; i < 300; i += 7) {
    const { collection, rkey } = lines[i]
    const rec = { ...record(i), text: `edited ${i}` }
    lines.push({ action: 'update', collection, rkey, record: rec })
    expected.set(`${collection}/${rkey}`, rec)
  }
  for (let i = 3; i < 300; i += 11) {
    const { collection, rkey } = lines[i]
    lines.push({ action: 'delete', collection, rkey })
    expected.delete(`${collection}/${rkey}`)
  }
  const ops = join(dir, 'ops.jsonl')
  writeFileSync(ops, lines.map((l) => JSON.stringify(l)).join('\n') + '\n')
  const written = berth('repo', 'write', '--data-dir', dir, '--did', did, '--file', ops, '--batch', '10')
  assert.equal(written.ops, lines.length)

  const carPath = join(dir, 'repo.car')
  berth('repo', 'export', '--data-dir', dir, '--did', did, '--out', carPath)
  const car = readFileSync(carPath)

  const verified = await verifyRepoCar(car, did, init.signingKey)
  assert.equal(verified.commit.cid.toString(), written.commit)
  assert.equal(verified.commit.rev, written.rev)
  assert.equal(verified.creates.length, expected.size)

  const { blocks } = await readCarWithRoot(car)
  for (const create of verified.creates) {
    const key = `${create.collection}/${create.rkey}`
    assert.ok(expected.has(key), `unexpected record ${key}`)
    const value = cborToLexRecord(blocks.get(create.cid))
    assert.deepEqual(value, expected.get(key), `record ${key} differs`)
  }

  // A wrong signing key must fail verification: the check above is not vacuous.
  const other = await Secp256k1Keypair.create()
  await assert.rejects(verifyRepoCar(car, did, other.did()))
})

test('a repo written by @atproto/repo imports into berth and re-exports identically', async (t) => {
  const dir = scratch(t)
  const did = 'did:plc:yk4dd2qkboz2yv6tpubpc6co'
  const keypair = await Secp256k1Keypair.create()
  const storage = new MemoryBlockstore()
  let repo = await Repo.create(storage, did, keypair)
  for (let batch = 0; batch < 30; batch++) {
    const writes = []
    for (let j = 0; j < 10; j++) {
      const i = batch * 10 + j
      writes.push({ action: WriteOpAction.Create, collection: 'app.bsky.feed.post', rkey: `ref${String(i).padStart(6, '0')}`, record: record(i) })
    }
    repo = await repo.applyWrites(writes, keypair)
  }
  repo = await repo.applyWrites([
    { action: WriteOpAction.Delete, collection: 'app.bsky.feed.post', rkey: `ref${String(5).padStart(6, '0')}` },
  ], keypair)
  const refCar = await concat(getFullRepo(storage, repo.cid))
  const refPath = join(dir, 'ref.car')
  writeFileSync(refPath, refCar)

  const imported = berth('repo', 'import', '--data-dir', dir, '--did', did, '--car', refPath, '--signing-key', keypair.did())
  assert.equal(imported.commit, repo.cid.toString())
  assert.equal(imported.records, 299)

  const outPath = join(dir, 'berth.car')
  berth('repo', 'export', '--data-dir', dir, '--did', did, '--out', outPath)
  const reexport = readFileSync(outPath)
  const { root } = await readCarWithRoot(reexport)
  assert.equal(root.toString(), repo.cid.toString())
  const verified = await verifyRepoCar(reexport, did, keypair.did())
  assert.equal(verified.commit.cid.toString(), repo.cid.toString())
  assert.equal(verified.creates.length, 299)

  // A CAR signed by someone else is refused and leaves nothing behind.
  const stranger = await Secp256k1Keypair.create()
  const dir2 = scratch(t)
  assert.throws(() => execFileSync(BERTH, ['repo', 'import', '--data-dir', dir2, '--did', did, '--car', refPath, '--signing-key', stranger.did()], { stdio: 'pipe' }))
})
