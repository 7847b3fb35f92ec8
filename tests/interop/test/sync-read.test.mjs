// berth's com.atproto.sync reads, checked by the reference's own verifiers (@atproto/repo):
// the getRepo CAR verifies as a whole repo against the signing key the PLC directory publishes,
// and getRecord CARs verify as proofs of inclusion and of non-inclusion.
import test from 'node:test'
import assert from 'node:assert/strict'
import { AtpAgent } from '@atproto/api'
import { verifyRepoCar, verifyRecords, verifyProofs, readCarWithRoot } from '@atproto/repo'
import { Secp256k1Keypair } from '@atproto/crypto'
import { startReferencePlc, startBerth } from '../lib/harness.mjs'

async function getCar(pds, nsid, params) {
  const res = await fetch(`${pds.url}/xrpc/${nsid}?${new URLSearchParams(params)}`)
  assert.equal(res.status, 200, `${nsid}: ${res.status}`)
  assert.equal(res.headers.get('content-type'), 'application/vnd.ipld.car')
  return new Uint8Array(await res.arrayBuffer())
}

test('getRepo and getRecord CARs verify with @atproto/repo', async (t) => {
  const plc = await startReferencePlc(t)
  const pds = await startBerth(t, { plcUrl: plc.url })
  const agent = new AtpAgent({ service: pds.url })
  const { data: account } = await agent.createAccount({ handle: 'sync.test', email: 'sync@example.com', password: 'hunter2-hunter2' })
  const did = account.did

  // Enough records for a multi-level tree (and a CAR over several 64 KiB chunks).
  const writes = []
  for (let i = 0; i < 150; i++) {
    writes.push({
      $type: 'com.atproto.repo.applyWrites#create',
      collection: 'app.bsky.feed.post',
      value: { $type: 'app.bsky.feed.post', text: `post ${i} ${'y'.repeat(250)}`, createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString() },
    })
  }
  await agent.com.atproto.repo.applyWrites({ repo: did, writes: writes.slice(0, 100) })
  await agent.com.atproto.repo.applyWrites({ repo: did, writes: writes.slice(100) })
  const { data: proved } = await agent.com.atproto.repo.createRecord({
    repo: did,
    collection: 'app.bsky.feed.post',
    record: { $type: 'app.bsky.feed.post', text: 'the proved one', createdAt: new Date().toISOString() },
  })

  // The signing key as the PLC directory publishes it, not as berth reports it.
  const plcData = await (await fetch(`${plc.url}/${did}/data`)).json()
  const signingKey = plcData.verificationMethods.atproto
  assert.match(signingKey, /^did:key:/)

  const { data: latest } = await agent.com.atproto.sync.getLatestCommit({ did })
  assert.equal(latest.cid, proved.commit.cid)

  const car = await getCar(pds, 'com.atproto.sync.getRepo', { did })
  assert.ok(car.length > 64 * 1024, `${car.length} bytes`)
  const { root } = await readCarWithRoot(car)
  assert.equal(root.toString(), latest.cid)
  const verified = await verifyRepoCar(car, did, signingKey)
  assert.equal(verified.commit.cid.toString(), latest.cid)
  assert.equal(verified.commit.rev, latest.rev)
  assert.equal(verified.creates.length, 151)
  const other = await Secp256k1Keypair.create()
  await assert.rejects(verifyRepoCar(car, did, other.did()))

  // Inclusion: the proof CAR holds the record and proves its CID.
  const rkey = proved.uri.split('/').pop()
  const proof = await getCar(pds, 'com.atproto.sync.getRecord', { did, collection: 'app.bsky.feed.post', rkey })
  assert.ok(proof.length < car.length / 10, 'a proof, not the whole repo')
  const records = await verifyRecords(proof, did, signingKey)
  assert.equal(records.length, 1)
  assert.equal(records[0].rkey, rkey)
  assert.equal(records[0].record.text, 'the proved one')
  const { blocks } = await readCarWithRoot(proof)
  const recordCid = blocks.cids().find((c) => c.toString() === proved.cid)
  assert.ok(recordCid, 'the record block is in the proof')
  const included = await verifyProofs(proof, [{ collection: 'app.bsky.feed.post', rkey, cid: recordCid }], did, signingKey)
  assert.equal(included.verified.length, 1)
  assert.equal(included.unverified.length, 0)

  // Non-inclusion: a key that is not there, proved absent from the proof blocks alone.
  for (const [collection, missing] of [['app.bsky.feed.post', '3zzzzzzzzzzzz'], ['app.bsky.feed.like', '2222222222222']]) {
    const absent = await getCar(pds, 'com.atproto.sync.getRecord', { did, collection, rkey: missing })
    const excluded = await verifyProofs(absent, [{ collection, rkey: missing, cid: null }], did, signingKey)
    assert.equal(excluded.verified.length, 1)
    assert.deepEqual(await verifyRecords(absent, did, signingKey), [])
  }
  await assert.rejects(verifyProofs(proof, [], did, other.did()))
})
