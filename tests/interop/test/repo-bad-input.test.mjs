// Malformed requests to the record and blob methods, sent as raw HTTP (what a buggy or hostile
// client sends, which the official client never would) to the reference PDS and to berth. Each
// request's status and XRPC error name are recorded; berth's must equal the reference's. After
// the refused writes, each repo must still be at the commit it was at before them.
import test from 'node:test'
import assert from 'node:assert/strict'
import { AtpAgent } from '@atproto/api'
import { onBoth, rawCaller, assertSameOutcomes } from '../lib/differential.mjs'

const NOW = '2026-11-23T10:00:00.000Z'
const post = (text) => ({ $type: 'app.bsky.feed.post', text, createdAt: NOW })
// Both servers get the same small blob limit, so the oversize upload is cheap.
const BLOB_LIMIT = 4096
const NOT_A_CID = 'bafyfoo'

async function scenario(url) {
  const agent = new AtpAgent({ service: url })
  await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'hunter2-hunter2' })
  const repo = agent.session.did
  const token = agent.session.accessJwt
  const { data: created } = await agent.com.atproto.repo.createRecord({
    repo, collection: 'app.bsky.feed.post', record: post('hello'),
  })
  const rkey = created.uri.split('/').pop()

  const { get, post: post_ } = rawCaller(url, token)
  const create = 'com.atproto.repo.createRecord'
  const t = {}
  // Accepted by the reference (see DELIBERATE), so before the repo's state is taken.
  t.createBadLink = await post_(create, { repo, collection: 'com.example.thing', record: { l: { $link: NOT_A_CID } } })
  t.createBadBytes = await post_(create, { repo, collection: 'com.example.thing', record: { b: { $bytes: '%%%' } } })
  const before = (await agent.com.atproto.sync.getLatestCommit({ did: repo })).data

  // Writes.
  t.createNotJson = await post_(create, '{"repo": ', { type: 'application/json' })
  t.createEmptyBody = await post_(create, '', { type: 'application/json' })
  t.createControlBytes = await post_(create, '\u0000\u0001', { type: 'application/json' })
  t.createJsonArray = await post_(create, [1, 2])
  t.putEmptyBody = await post_('com.atproto.repo.putRecord', '', { type: 'application/json' })
  t.createTextPlain = await post_(create, JSON.stringify({ repo, collection: 'app.bsky.feed.post', record: post('x') }), { type: 'text/plain' })
  t.createNoRecord = await post_(create, { repo, collection: 'app.bsky.feed.post' })
  t.createNoCollection = await post_(create, { repo, record: post('x') })
  t.createBadCollection = await post_(create, { repo, collection: 'not-an-nsid', record: post('x') })
  t.createRecordString = await post_(create, { repo, collection: 'app.bsky.feed.post', record: 'hello' })
  t.createValidateString = await post_(create, { repo, collection: 'app.bsky.feed.post', validate: 'yes', record: post('x') })
  t.createRkeyTooLong = await post_(create, { repo, collection: 'com.example.thing', rkey: 'a'.repeat(513), record: { a: 1 } })
  t.createRkeyDot = await post_(create, { repo, collection: 'com.example.thing', rkey: '.', record: { a: 1 } })
  t.createSwapNotCid = await post_(create, { repo, collection: 'app.bsky.feed.post', record: post('x'), swapCommit: NOT_A_CID })
  t.createBadRepo = await post_(create, { repo: 'not a did', collection: 'app.bsky.feed.post', record: post('x') })
  t.createNoAuth = await post_(create, { repo, collection: 'app.bsky.feed.post', record: post('x') }, { auth: null })
  t.createGarbageToken = await post_(create, { repo, collection: 'app.bsky.feed.post', record: post('x') }, { auth: 'Bearer not.a.jwt' })
  t.createBasicAuth = await post_(create, { repo, collection: 'app.bsky.feed.post', record: post('x') }, { auth: 'Basic YWRtaW46YWRtaW4tcGFzcw==' })
  t.createFloat = await post_(create, { repo, collection: 'com.example.thing', record: { n: 1.5 } })
  t.createBadDatetime = await post_(create, { repo, collection: 'app.bsky.feed.post', record: { ...post('x'), createdAt: 'yesterday' } })
  t.putNoRkey = await post_('com.atproto.repo.putRecord', { repo, collection: 'app.bsky.feed.post', record: post('x') })
  t.putSwapNotCid = await post_('com.atproto.repo.putRecord', { repo, collection: 'app.bsky.feed.post', rkey, record: post('x'), swapRecord: NOT_A_CID })
  t.deleteNoRkey = await post_('com.atproto.repo.deleteRecord', { repo, collection: 'app.bsky.feed.post' })
  t.deleteSwapNotCid = await post_('com.atproto.repo.deleteRecord', { repo, collection: 'app.bsky.feed.post', rkey, swapCommit: NOT_A_CID })
  t.applyUnknownType = await post_('com.atproto.repo.applyWrites', {
    repo, writes: [{ $type: 'com.atproto.repo.applyWrites#upsert', collection: 'app.bsky.feed.post', rkey: 'k', value: post('x') }],
  })
  t.applyWritesNotArray = await post_('com.atproto.repo.applyWrites', { repo, writes: { a: 1 } })
  t.applyCreateNoValue = await post_('com.atproto.repo.applyWrites', {
    repo, writes: [{ $type: 'com.atproto.repo.applyWrites#create', collection: 'app.bsky.feed.post' }],
  })
  t.applyOneBadAmongGood = await post_('com.atproto.repo.applyWrites', {
    repo,
    writes: [
      { $type: 'com.atproto.repo.applyWrites#create', collection: 'app.bsky.feed.post', value: post('fine') },
      { $type: 'com.atproto.repo.applyWrites#create', collection: 'app.bsky.feed.post', value: post('x'.repeat(3001)) },
    ],
  })
  t.applyDeleteMissing = await post_('com.atproto.repo.applyWrites', {
    repo, writes: [{ $type: 'com.atproto.repo.applyWrites#delete', collection: 'app.bsky.feed.post', rkey: '3kzzzzzzzzzzz' }],
  })
  t.applyUpdateMissing = await post_('com.atproto.repo.applyWrites', {
    repo, writes: [{ $type: 'com.atproto.repo.applyWrites#update', collection: 'app.bsky.feed.post', rkey: '3kzzzzzzzzzzz', value: post('x') }],
  })
  t.createWrongMethod = await get(create, { repo })
  t.importGarbage = await post_('com.atproto.repo.importRepo', new Uint8Array([1, 2, 3, 4]), { type: 'application/vnd.ipld.car' })

  // Blobs.
  t.uploadNoAuth = await post_('com.atproto.repo.uploadBlob', new Uint8Array(16), { type: 'image/png', auth: null })
  t.uploadTooBig = await post_('com.atproto.repo.uploadBlob', new Uint8Array(BLOB_LIMIT + 1), { type: 'application/octet-stream' })
  t.listMissingBlobsLimit0 = await get('com.atproto.repo.listMissingBlobs', { limit: '0' })
  t.listMissingBlobsLimitBig = await get('com.atproto.repo.listMissingBlobs', { limit: '1001' })
  t.getBlobBadCid = await get('com.atproto.sync.getBlob', { did: repo, cid: NOT_A_CID })
  t.getBlobMissing = await get('com.atproto.sync.getBlob', { did: repo, cid: 'bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy' })
  t.getBlobNoDid = await get('com.atproto.sync.getBlob', { cid: 'bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy' })

  // Reads.
  t.getRecordNoRkey = await get('com.atproto.repo.getRecord', { repo, collection: 'app.bsky.feed.post' })
  t.getRecordBadCollection = await get('com.atproto.repo.getRecord', { repo, collection: 'nope', rkey })
  t.getRecordBadCid = await get('com.atproto.repo.getRecord', { repo, collection: 'app.bsky.feed.post', rkey, cid: NOT_A_CID })
  t.getRecordUnknownRepo = await get('com.atproto.repo.getRecord', { repo: 'did:plc:ewvi7nxzyoun6zhxrhs64oiz', collection: 'app.bsky.feed.post', rkey })
  t.getRecordUnknownHandle = await get('com.atproto.repo.getRecord', { repo: 'nobody.test', collection: 'app.bsky.feed.post', rkey })
  t.listRecordsLimit0 = await get('com.atproto.repo.listRecords', { repo, collection: 'app.bsky.feed.post', limit: '0' })
  t.listRecordsLimit101 = await get('com.atproto.repo.listRecords', { repo, collection: 'app.bsky.feed.post', limit: '101' })
  t.listRecordsLimitText = await get('com.atproto.repo.listRecords', { repo, collection: 'app.bsky.feed.post', limit: 'ten' })
  t.listRecordsReverseText = await get('com.atproto.repo.listRecords', { repo, collection: 'app.bsky.feed.post', reverse: 'maybe' })
  t.listRecordsUnknownRepo = await get('com.atproto.repo.listRecords', { repo: 'did:plc:ewvi7nxzyoun6zhxrhs64oiz', collection: 'app.bsky.feed.post' })
  t.listRecordsNoCollection = await get('com.atproto.repo.listRecords', { repo })
  t.listRecordsBadCollection = await get('com.atproto.repo.listRecords', { repo, collection: 'nope' })
  t.listRecordsBadRepo = await get('com.atproto.repo.listRecords', { repo: 'not a did', collection: 'app.bsky.feed.post' })
  t.getRecordBadRkey = await get('com.atproto.repo.getRecord', { repo, collection: 'app.bsky.feed.post', rkey: 'a b' })
  t.getRecordBadRepo = await get('com.atproto.repo.getRecord', { repo: 'not a did', collection: 'app.bsky.feed.post', rkey })
  t.describeRepoUnknownHandle = await get('com.atproto.repo.describeRepo', { repo: 'nobody.test' })
  t.describeRepoNoRepo = await get('com.atproto.repo.describeRepo', {})
  t.describeRepoUnknown = await get('com.atproto.repo.describeRepo', { repo: 'did:plc:ewvi7nxzyoun6zhxrhs64oiz' })
  t.describeRepoBadRepo = await get('com.atproto.repo.describeRepo', { repo: 'not a did' })
  t.getRecordWrongMethod = await post_('com.atproto.repo.getRecord', {})
  t.unknownMethod = await get('com.atproto.repo.noSuchMethod', {})

  const after = (await agent.com.atproto.sync.getLatestCommit({ did: repo })).data
  return { t, unchanged: after.cid === before.cid && after.rev === before.rev }
}

// Where berth answers differently on purpose, each with the outcome both give today, so a
// change on either side shows here.
const DELIBERATE = {
  // The data model forbids these values; the reference stores them, berth refuses them (a repo
  // holding them would fail verification elsewhere).
  createBadLink: { reference: { status: 200, error: null }, berth: { status: 400, error: 'InvalidRequest' } },
  createBadBytes: { reference: { status: 200, error: null }, berth: { status: 400, error: 'InvalidRequest' } },
  // The reference fails with a 500; berth names the client's mistake.
  applyDeleteMissing: { reference: { status: 500, error: 'InternalServerError' }, berth: { status: 400, error: 'InvalidRequest' } },
  applyUpdateMissing: { reference: { status: 500, error: 'InternalServerError' }, berth: { status: 400, error: 'InvalidRequest' } },
  importGarbage: { reference: { status: 500, error: 'InternalServerError' }, berth: { status: 400, error: 'InvalidRequest' } },
  // The reference hands unknown methods to its AppView and, with none configured, says so;
  // berth proxies nothing yet.
  unknownMethod: { reference: { status: 400, error: 'InvalidRequest' }, berth: { status: 501, error: 'MethodNotImplemented' } },
}

test('malformed record and blob requests get the reference PDS\'s errors', async (t) => {
  const { expected, actual } = await onBoth(t, scenario, { env: { PDS_BLOB_UPLOAD_LIMIT: String(BLOB_LIMIT) } })
  assertSameOutcomes(expected.t, actual.t, DELIBERATE, { mayPass: 2 })
  assert.equal(expected.unchanged, true, 'the reference repo moved')
  assert.equal(actual.unchanged, true, 'a refused write moved berth\'s repo')
})
