// Paging through listRecords, listBlobs and listRepos on the reference PDS and on berth, with
// the same records (fixed keys) and the same blob bytes on both, so keys, CIDs and cursors can be
// compared as values: every page's items and whether (and which) cursor comes back.
import test from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { AtpAgent } from '@atproto/api'
import { onBoth, assertSameByKey } from '../lib/differential.mjs'

const KEYS = ['a1', 'b2', 'c3', 'd4', 'e5', 'f6', 'g7']
const COLLECTION = 'com.example.thing'
// Deterministic blob contents, the same on both servers.
const BLOBS = [1, 2, 3, 4, 5].map((i) => createHash('sha256').update(`blob ${i}`).digest())

async function pages(fetchPage, { limit, reverse, cursor, max = 10 }) {
  const out = []
  let next = cursor
  for (let i = 0; i < max; i++) {
    const page = await fetchPage({ limit, reverse, cursor: next })
    out.push(page)
    if (!page.cursor) break
    next = page.cursor
  }
  return out
}

async function scenario(url) {
  const agent = new AtpAgent({ service: url })
  await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'hunter2-hunter2' })
  const repo = agent.session.did
  for (const handle of ['bob.test', 'carol.test']) {
    await new AtpAgent({ service: url }).createAccount({ handle, email: `${handle}@example.com`, password: 'hunter2-hunter2' })
  }
  const R = agent.com.atproto.repo
  // Created out of key order, so ordering by key and by time differ.
  for (const rkey of ['d4', 'a1', 'g7', 'c3', 'f6', 'b2', 'e5']) {
    await R.createRecord({ repo, collection: COLLECTION, rkey, record: { k: rkey } })
  }
  for (const [i, bytes] of BLOBS.entries()) {
    const { data } = await R.uploadBlob(bytes, { encoding: 'application/octet-stream' })
    await R.createRecord({ repo, collection: 'com.example.withblob', rkey: `b${i}`, record: { b: data.blob } })
  }
  const get = async (nsid, params) => {
    const qs = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)]))
    const res = await fetch(`${url}/xrpc/${nsid}?${qs}`)
    return { status: res.status, body: await res.json() }
  }
  const records = async (p) => {
    const { status, body } = await get('com.atproto.repo.listRecords', { repo, collection: COLLECTION, ...p })
    return status === 200 ? { keys: body.records.map((r) => r.uri.split('/').pop()), cursor: body.cursor ?? null } : { status, error: body.error }
  }
  const blobs = async (p) => {
    const { status, body } = await get('com.atproto.sync.listBlobs', { did: repo, limit: p.limit, cursor: p.cursor })
    return status === 200 ? { cids: body.cids, cursor: body.cursor ?? null } : { status, error: body.error }
  }
  const repos = async (p) => {
    const { status, body } = await get('com.atproto.sync.listRepos', { limit: p.limit, cursor: p.cursor })
    return status === 200 ? { n: body.repos.length, cursor: body.cursor ? 'cursor' : null } : { status, error: body.error }
  }
  const t = {}
  t.recordsBy3 = await pages(records, { limit: 3 })
  t.recordsBy3Reverse = await pages(records, { limit: 3, reverse: true })
  t.recordsAll = await pages(records, { limit: 100 })
  t.recordsFromMiddle = await pages(records, { limit: 2, cursor: 'd4' })
  t.recordsFromMiddleReverse = await pages(records, { limit: 2, cursor: 'd4', reverse: true })
  t.recordsCursorPastEnd = await pages(records, { limit: 2, cursor: 'a0' })
  t.recordsCursorBeforeStart = await pages(records, { limit: 2, cursor: 'zz' })
  t.recordsCursorNotAKey = await pages(records, { limit: 2, cursor: 'not a key!' })
  t.recordsLimitExact = await pages(records, { limit: 7 })
  t.blobsBy2 = await pages(blobs, { limit: 2 })
  t.blobsAll = await pages(blobs, {})
  t.reposBy2 = await pages(repos, { limit: 2 })
  t.reposAll = await pages(repos, {})
  return t
}

test('paging behaves as on the reference PDS', async (t) => {
  const { expected, actual } = await onBoth(t, scenario)
  assert.equal(expected.recordsAll[0].keys.length, KEYS.length)
  assertSameByKey(expected, actual)
})
