// berth's firehose (com.atproto.sync.subscribeRepos) consumed by the reference's verifying
// client, @atproto/sync's Firehose (commit signatures and inclusion proofs checked against the
// DID document in the reference PLC), while two accounts write a mixed load. A second, raw
// subscriber (@atproto/xrpc-server's Subscription) checks what relays check on top: no gap in
// seq, and sync 1.1 inversion of every commit (the ops undone on the event's blocks alone give
// prevData, with @atproto/repo's MST).
import test from 'node:test'
import assert from 'node:assert/strict'
import { AtpAgent } from '@atproto/api'
import { Firehose } from '@atproto/sync'
import { IdResolver } from '@atproto/identity'
import { Subscription } from '@atproto/xrpc-server'
import { MST, MemoryBlockstore, readCarWithRoot, def } from '@atproto/repo'
import { startReferencePlc, startBerth } from '../lib/harness.mjs'

const NOW = '2026-11-23T10:00:00.000Z'

/** Undoes a commit's ops on its own blocks; returns the resulting MST root. */
async function invert(evt) {
  const car = await readCarWithRoot(evt.blocks)
  const storage = new MemoryBlockstore(car.blocks)
  const commit = await storage.readObj(car.root, def.commit)
  let mst = MST.load(storage, commit.data)
  for (const op of [...evt.ops].reverse()) {
    if (op.action === 'create') mst = await mst.delete(op.path)
    else if (op.action === 'update') mst = await mst.update(op.path, op.prev)
    else if (op.action === 'delete') mst = await mst.add(op.path, op.prev)
  }
  return mst.getPointer()
}

async function waitFor(pred, ms, what) {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

test('a verifying firehose consumer accepts every berth event, in order, with no gap', async (t) => {
  const plc = await startReferencePlc(t)
  const pds = await startBerth(t, { plcUrl: plc.url })
  const ws = pds.url.replace(/^http/, 'ws')

  const alice = new AtpAgent({ service: pds.url })
  await alice.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'hunter2-hunter2' })
  const bob = new AtpAgent({ service: pds.url })
  await bob.createAccount({ handle: 'bob.test', email: 'bob@example.com', password: 'hunter2-hunter2' })

  // The verifying consumer, from the start of the log.
  // The default fetch refuses plain http and loopback (SSRF protection); this PLC is on loopback.
  const idResolver = new IdResolver({ plcUrl: plc.url, fetch: globalThis.fetch })
  const verified = []
  const errors = []
  const firehose = new Firehose({
    idResolver,
    service: ws,
    getCursor: async () => 0,
    unauthenticatedCommits: false,
    unauthenticatedHandles: false,
    handleEvent: async (evt) => { verified.push(evt) },
    onError: (err) => { errors.push(err) },
  })
  firehose.start()
  t.after(() => firehose.destroy())

  // The raw consumer.
  const raw = []
  const abort = new AbortController()
  const sub = new Subscription({
    service: ws,
    method: 'com.atproto.sync.subscribeRepos',
    getParams: () => ({ cursor: 0 }),
    validate: (v) => v,
    signal: abort.signal,
  })
  const rawDone = (async () => {
    try {
      for await (const evt of sub) raw.push(evt)
    } catch (e) {
      if (e?.name !== 'AbortError') throw e
    }
  })()
  t.after(async () => { abort.abort(); await rawDone })

  // A mixed load from both accounts at once.
  const expected = new Map() // uri -> last cid (null when deleted)
  async function load(agent, n) {
    const repo = agent.session.did
    const R = agent.com.atproto.repo
    const uris = []
    for (let i = 0; i < n; i++) {
      const r = await R.createRecord({ repo, collection: 'app.bsky.feed.post', record: { $type: 'app.bsky.feed.post', text: `post ${i}`, createdAt: NOW } })
      expected.set(r.data.uri, r.data.cid)
      uris.push(r.data.uri)
      if (i % 4 === 3) {
        const rkey = uris[i - 1].split('/').pop()
        const u = await R.putRecord({ repo, collection: 'app.bsky.feed.post', rkey, record: { $type: 'app.bsky.feed.post', text: `edited ${i}`, createdAt: NOW } })
        expected.set(u.data.uri, u.data.cid)
      }
      if (i % 5 === 4) {
        const rkey = uris[i - 3].split('/').pop()
        await R.deleteRecord({ repo, collection: 'app.bsky.feed.post', rkey })
        expected.set(uris[i - 3], null)
      }
    }
    const batch = await R.applyWrites({
      repo,
      writes: [
        { $type: 'com.atproto.repo.applyWrites#create', collection: 'app.bsky.feed.like', rkey: '3kaaaaaaaaaa2', value: { $type: 'app.bsky.feed.like', subject: { uri: uris[0], cid: expected.get(uris[0]) ?? 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm' }, createdAt: NOW } },
        { $type: 'com.atproto.repo.applyWrites#delete', collection: 'app.bsky.feed.post', rkey: uris[n - 1].split('/').pop() },
      ],
    })
    expected.set(batch.data.results[0].uri, batch.data.results[0].cid)
    expected.set(uris[n - 1], null)
  }
  await Promise.all([load(alice, 40), load(bob, 40)])
  await alice.com.atproto.identity.updateHandle({ handle: 'alice2.test' })

  // The handle change is the last event; wait until both consumers have it.
  await waitFor(() => raw.some((e) => e.handle === 'alice2.test'), 20_000, 'the handle change on the raw stream')
  const lastSeq = raw.at(-1).seq
  await waitFor(() => verified.some((e) => e.seq === lastSeq), 20_000, `the verifying consumer to reach seq ${lastSeq}`).catch((e) => {
    throw new Error(`${e.message}; verified up to ${verified.at(-1)?.seq}; ${errors.length} errors: ${errors.slice(0, 3).map((x) => `${x.message} ${x.cause?.message} ${JSON.stringify(x.value ?? '').slice(0, 300)}`).join(' | ')}`)
  })

  assert.deepEqual(errors.map((e) => `${e.message}: ${e.cause?.message ?? ''}`), [], 'the verifying consumer rejected events')

  // No gap, no duplicate, no reordering.
  const seqs = raw.map((e) => e.seq)
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1))

  // Every commit inverts to its prevData (the genesis commits have none).
  let inverted = 0
  for (const evt of raw) {
    if (!('ops' in evt) || !evt.prevData) continue
    const root = await invert(evt)
    assert.equal(root.toString(), evt.prevData.toString(), `seq ${evt.seq}: ops do not invert to prevData`)
    inverted++
  }
  // 2 accounts x (40 creates + 10 edits + 8 deletes + 1 batch).
  assert.equal(inverted, 118)

  // Every acknowledged write reached the verified stream, with the acknowledged CID.
  const seen = new Map()
  for (const e of verified) {
    if (e.event === 'create' || e.event === 'update') seen.set(e.uri.toString(), e.cid.toString())
    if (e.event === 'delete') seen.set(e.uri.toString(), null)
  }
  for (const [uri, cid] of expected) assert.equal(seen.get(uri), cid, `${uri} on the firehose`)

  // Sign-up order as the reference: identity, account, commit, sync.
  const aliceDid = alice.session.did
  const firstFour = raw.filter((e) => (e.repo ?? e.did) === aliceDid).slice(0, 4)
  assert.deepEqual(firstFour.map((e) => ('ops' in e ? 'commit' : 'active' in e ? 'account' : 'blocks' in e ? 'sync' : 'identity')), ['identity', 'account', 'commit', 'sync'])
})
