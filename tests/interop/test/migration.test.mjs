// Account migration with `berth migrate`, both ways with the reference PDS and between two
// berths, on one reference PLC: an account with 2,000 records, 10 image blobs, a profile with
// an avatar and preferences moves reference -> berth, posts there, moves back to the reference;
// a berth account moves berth -> berth with the run killed after every step in turn and rerun.
// After each move: the DID document names the new host, every record and blob is there (CIDs
// compared), preferences kept, the old host reports deactivated, and the new host's firehose
// carries the events the reference would (#identity, #account, #identity, #sync).
import test from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { AtpAgent } from '@atproto/api'
import { Subscription } from '@atproto/xrpc-server'
import { startReferencePlc, startReferencePds, startBerth, BERTH } from '../lib/harness.mjs'
import { randomPng } from '../lib/png.mjs'

const NOW = '2026-11-23T10:00:00.000Z'
const PASSWORD = 'hunter2-hunter2'

/** Runs `berth migrate`; resolves with {code, out, seconds}. */
function migrate(args, env = {}) {
  const started = Date.now()
  return new Promise((resolve) => {
    const child = spawn(BERTH, ['migrate', ...args], {
      env: { PATH: process.env.PATH, BERTH_MIGRATE_PASSWORD: PASSWORD, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.on('exit', (code) => resolve({ code, out, seconds: (Date.now() - started) / 1000 }))
  })
}

/** The PLC token a host stored for the account (reference: requestedAt; berth: requested_at). */
function plcToken(dataDir, did) {
  const db = new Database(join(dataDir, 'account.sqlite'), { readonly: true, fileMustExist: true })
  try {
    const row = db.prepare("SELECT token FROM email_token WHERE purpose = 'plc_operation' AND did = ?").get(did)
    return row?.token
  } finally {
    db.close()
  }
}

/** Everything that must survive a move. */
async function snapshot(url, did) {
  const agent = new AtpAgent({ service: url })
  const R = agent.com.atproto.repo
  const desc = await R.describeRepo({ repo: did })
  const records = {}
  for (const collection of desc.data.collections) {
    let cursor
    do {
      const page = await R.listRecords({ repo: did, collection, limit: 100, cursor })
      for (const r of page.data.records) records[r.uri] = r.cid
      cursor = page.data.records.length === 100 ? page.data.cursor : undefined
    } while (cursor)
  }
  const blobs = {}
  let cursor
  do {
    const page = await agent.com.atproto.sync.listBlobs({ did, limit: 500, cursor })
    for (const cid of page.data.cids) {
      const res = await fetch(`${url}/xrpc/com.atproto.sync.getBlob?did=${did}&cid=${cid}`)
      assert.equal(res.status, 200, `blob ${cid} on ${url}`)
      blobs[cid] = Buffer.from(await res.arrayBuffer()).toString('base64').length
    }
    cursor = page.data.cids.length === 500 ? page.data.cursor : undefined
  } while (cursor)
  return { records, blobs }
}

async function didDocEndpoint(plcUrl, did) {
  const doc = await (await fetch(`${plcUrl}/${did}`)).json()
  return doc.service.find((s) => s.id.endsWith('#atproto_pds')).serviceEndpoint
}

async function accountStatus(url, did) {
  const agent = new AtpAgent({ service: url })
  await agent.login({ identifier: did, password: PASSWORD })
  return (await agent.com.atproto.server.checkAccountStatus()).data
}

/** Collects a host's firehose from now on. */
function firehose(t, url) {
  const events = []
  const abort = new AbortController()
  const sub = new Subscription({
    service: url.replace(/^http/, 'ws'),
    method: 'com.atproto.sync.subscribeRepos',
    getParams: () => ({}),
    validate: (v) => v,
    signal: abort.signal,
  })
  const done = (async () => {
    try {
      for await (const e of sub) events.push(e)
    } catch (e) {
      if (e?.name !== 'AbortError') throw e
    }
  })()
  t.after(async () => { abort.abort(); await done })
  return events
}

const kind = (e) => ('ops' in e ? 'commit' : 'active' in e ? 'account' : 'blocks' in e ? 'sync' : 'identity')

test('accounts move reference -> berth -> reference, and berth -> berth through crashes', async (t) => {
  const plc = await startReferencePlc(t)
  // An AppView is named (never reached) so the reference serves preferences itself.
  const reference = await startReferencePds(t, {
    plcUrl: plc.url,
    env: { PDS_BSKY_APP_VIEW_URL: 'http://localhost:9', PDS_BSKY_APP_VIEW_DID: 'did:web:localhost%3A9' },
  })
  const berth = await startBerth(t, { plcUrl: plc.url })
  const berth2 = await startBerth(t, { plcUrl: plc.url })

  // The account, on the reference: 2,000 records, 10 images, profile with avatar, preferences.
  const alice = new AtpAgent({ service: reference.url })
  await alice.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: PASSWORD })
  const did = alice.session.did
  for (let b = 0; b < 10; b++) {
    await alice.com.atproto.repo.applyWrites({
      repo: did,
      writes: Array.from({ length: 199 }, (_, i) => ({
        $type: 'com.atproto.repo.applyWrites#create',
        collection: 'app.bsky.feed.post',
        value: { $type: 'app.bsky.feed.post', text: `post ${b}-${i}`, createdAt: NOW },
      })),
    })
  }
  const images = []
  for (let i = 0; i < 10; i++) {
    const { data } = await alice.uploadBlob(randomPng(32, 32), { encoding: 'image/png' })
    images.push(data.blob)
    if (i < 9) await alice.post({ text: `image ${i}`, createdAt: NOW, embed: { $type: 'app.bsky.embed.images', images: [{ image: data.blob, alt: `${i}` }] } })
  }
  await alice.upsertProfile(() => ({ displayName: 'Alice', avatar: images[9] }))
  const prefs = [{ $type: 'app.bsky.actor.defs#adultContentPref', enabled: true }]
  await alice.app.bsky.actor.putPreferences({ preferences: prefs })
  const before = await snapshot(reference.url, did)
  assert.equal(Object.keys(before.records).length, 2000)
  assert.equal(Object.keys(before.blobs).length, 10)

  // reference -> berth in one timed run: the PLC token is requested (and read from the
  // reference's database, where its email would come from) before the run starts.
  const berthEvents = firehose(t, berth.url)
  const args = ['--from', reference.url, '--to', berth.url, '--identifier', 'alice.test', '--plc-url', plc.url]
  await alice.com.atproto.identity.requestPlcOperationSignature()
  const token = plcToken(reference.dataDir, did)
  assert.ok(token, 'the reference stored a PLC token')
  const moved = await migrate([...args, '--plc-token', token])
  assert.equal(moved.code, 0, moved.out)
  console.log(`# reference -> berth, 2,000 records + 10 blobs: ${moved.seconds.toFixed(2)} s (berth migrate wall time)`)
  for (const line of moved.out.split('\n')) console.log(`#   ${line}`)
  assert.equal(await didDocEndpoint(plc.url, did), berth.url)
  assert.deepEqual(await snapshot(berth.url, did), before)
  assert.equal((await accountStatus(reference.url, did)).activated, false)
  assert.equal((await accountStatus(berth.url, did)).activated, true)
  const onBerth = new AtpAgent({ service: berth.url })
  await onBerth.login({ identifier: did, password: PASSWORD })
  assert.deepEqual((await onBerth.app.bsky.actor.getPreferences()).data.preferences, prefs)
  const activation = berthEvents.filter((e) => (e.did ?? e.repo) === did).map(kind)
  assert.deepEqual(activation.slice(0, 4), ['identity', 'account', 'identity', 'sync'], `berth's firehose: ${activation}`)

  // A post on berth, then berth -> reference.
  const post = await onBerth.post({ text: 'posted on berth', createdAt: NOW })
  const onBerthSnap = await snapshot(berth.url, did)
  const back = ['--from', berth.url, '--to', reference.url, '--identifier', did, '--plc-url', plc.url]
  await onBerth.com.atproto.identity.requestPlcOperationSignature()
  const backToken = plcToken(berth.dataDir, did)
  assert.ok(backToken, 'berth stored a PLC token')
  const movedBack = await migrate([...back, '--plc-token', backToken])
  assert.equal(movedBack.code, 0, movedBack.out)
  console.log(`# berth -> reference, 2,001 records + 10 blobs: ${movedBack.seconds.toFixed(2)} s (berth migrate wall time)`)
  assert.equal(await didDocEndpoint(plc.url, did), reference.url)
  assert.deepEqual(await snapshot(reference.url, did), onBerthSnap)
  assert.ok(onBerthSnap.records[post.uri])
  assert.equal((await accountStatus(berth.url, did)).activated, false)
  const backHome = new AtpAgent({ service: reference.url })
  await backHome.login({ identifier: did, password: PASSWORD })
  assert.deepEqual((await backHome.app.bsky.actor.getPreferences()).data.preferences, prefs)

  // berth -> berth, killed after every step in turn, then rerun to the end.
  const bob = new AtpAgent({ service: berth.url })
  await bob.createAccount({ handle: 'bob.test', email: 'bob@example.com', password: PASSWORD })
  const bobDid = bob.session.did
  for (let i = 0; i < 50; i++) await bob.post({ text: `bob ${i}`, createdAt: NOW })
  const { data: { blob: bobBlob } } = await bob.uploadBlob(randomPng(), { encoding: 'image/png' })
  await bob.upsertProfile(() => ({ displayName: 'Bob', avatar: bobBlob }))
  const bobBefore = await snapshot(berth.url, bobDid)
  const berth2Events = firehose(t, berth2.url)
  const bobArgs = ['--from', berth.url, '--to', berth2.url, '--identifier', bobDid, '--plc-url', plc.url]
  // Without a token the run stops before identity, after asking the old host to email one.
  const ask = await migrate(bobArgs)
  assert.notEqual(ask.code, 0, ask.out)
  assert.match(ask.out, /--plc-token/)
  assert.equal(await didDocEndpoint(plc.url, bobDid), berth.url, 'identity not moved without the token')
  const bobToken = plcToken(berth.dataDir, bobDid)
  assert.ok(bobToken, 'berth stored a PLC token')
  const steps = ['check', 'create-account', 'import-repo', 'blobs', 'preferences', 'verify-copy', 'identity', 'activate', 'deactivate-old']
  for (const step of steps) {
    const run = await migrate([...bobArgs, '--plc-token', bobToken], { BERTH_MIGRATE_FAIL_AFTER: step })
    assert.notEqual(run.code, 0, `killed after ${step}: ${run.out}`)
    assert.match(run.out, new RegExp(`stopped after step ${step}`))
  }
  const last = await migrate([...bobArgs, '--plc-token', bobToken])
  assert.equal(last.code, 0, last.out)
  assert.equal(await didDocEndpoint(plc.url, bobDid), berth2.url)
  const bobAfter = await snapshot(berth2.url, bobDid)
  // The verify step's probe record was created and deleted: same records, same blobs.
  assert.deepEqual(bobAfter, bobBefore)
  assert.equal((await accountStatus(berth.url, bobDid)).activated, false)
  assert.equal((await accountStatus(berth2.url, bobDid)).activated, true)
  // The new host announced the move as the reference does: #identity from the PLC submission,
  // then activation's #account, #identity and #sync; then the verify step's test write.
  const bobEvents = berth2Events.filter((e) => (e.did ?? e.repo) === bobDid).map(kind)
  assert.deepEqual(bobEvents.slice(0, 4), ['identity', 'account', 'identity', 'sync'], `berth2's firehose: ${bobEvents}`)
})
