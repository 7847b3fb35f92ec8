// Malformed and unanswerable requests to the com.atproto.sync methods a PDS serves, sent as raw
// HTTP to the reference PDS and to berth; each status and XRPC error name must match.
import test from 'node:test'
import { AtpAgent } from '@atproto/api'
import { onBoth, rawCaller, assertSameOutcomes } from '../lib/differential.mjs'

const NOW = '2026-11-23T10:00:00.000Z'
const UNKNOWN_DID = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz'
const UNKNOWN_CID = 'bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy'
// The root node of an empty tree: in the repo at its first commit, replaced by the first record.
const EMPTY_TREE_NODE = 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm'
const NOT_A_CID = 'bafyfoo'

async function scenario(url) {
  const agent = new AtpAgent({ service: url })
  await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'hunter2-hunter2' })
  const did = agent.session.did
  const { data: created } = await agent.com.atproto.repo.createRecord({
    repo: did, collection: 'app.bsky.feed.post', record: { $type: 'app.bsky.feed.post', text: 'hi', createdAt: NOW },
  })
  const rkey = created.uri.split('/').pop()
  // Sync reads need no auth: sent without it, as a relay would.
  const { get } = rawCaller(url, null)
  const s = 'com.atproto.sync'
  const t = {}

  t.getRepoNoDid = await get(`${s}.getRepo`, {})
  t.getRepoBadDid = await get(`${s}.getRepo`, { did: 'alice.test' })
  t.getRepoUnknown = await get(`${s}.getRepo`, { did: UNKNOWN_DID })
  t.getRepoBadSince = await get(`${s}.getRepo`, { did, since: 'yesterday' })
  t.getRecordNoRkey = await get(`${s}.getRecord`, { did, collection: 'app.bsky.feed.post' })
  t.getRecordBadCollection = await get(`${s}.getRecord`, { did, collection: 'nope', rkey })
  t.getRecordBadRkey = await get(`${s}.getRecord`, { did, collection: 'app.bsky.feed.post', rkey: 'a b' })
  t.getRecordUnknownRepo = await get(`${s}.getRecord`, { did: UNKNOWN_DID, collection: 'app.bsky.feed.post', rkey })
  t.getBlocksNoCids = await get(`${s}.getBlocks`, { did })
  t.getBlocksBadCid = await get(`${s}.getBlocks`, { did, cids: NOT_A_CID })
  t.getBlocksUnknownCid = await get(`${s}.getBlocks`, { did, cids: UNKNOWN_CID })
  t.getBlocksReplacedNode = await get(`${s}.getBlocks`, { did, cids: EMPTY_TREE_NODE })
  t.getBlocksUnknownRepo = await get(`${s}.getBlocks`, { did: UNKNOWN_DID, cids: UNKNOWN_CID })
  t.getLatestCommitNoDid = await get(`${s}.getLatestCommit`, {})
  t.getLatestCommitBadDid = await get(`${s}.getLatestCommit`, { did: 'not a did' })
  t.getLatestCommitUnknown = await get(`${s}.getLatestCommit`, { did: UNKNOWN_DID })
  t.getRepoStatusBadDid = await get(`${s}.getRepoStatus`, { did: 'not a did' })
  t.getRepoStatusUnknown = await get(`${s}.getRepoStatus`, { did: UNKNOWN_DID })
  t.listBlobsUnknown = await get(`${s}.listBlobs`, { did: UNKNOWN_DID })
  t.listBlobsLimit0 = await get(`${s}.listBlobs`, { did, limit: '0' })
  t.listBlobsLimitBig = await get(`${s}.listBlobs`, { did, limit: '1001' })
  t.listBlobsBadSince = await get(`${s}.listBlobs`, { did, since: 'yesterday' })
  t.listReposLimit0 = await get(`${s}.listRepos`, { limit: '0' })
  t.listReposLimitBig = await get(`${s}.listRepos`, { limit: '1001' })
  t.listReposLimitText = await get(`${s}.listRepos`, { limit: 'ten' })
  t.getHeadUnknown = await get(`${s}.getHead`, { did: UNKNOWN_DID })
  t.getCheckoutUnknown = await get(`${s}.getCheckout`, { did: UNKNOWN_DID })
  t.getBlobUnknownRepo = await get(`${s}.getBlob`, { did: UNKNOWN_DID, cid: UNKNOWN_CID })
  t.getRepoWrongMethod = await rawCaller(url, null).post(`${s}.getRepo`, {})
  return t
}

test('malformed sync requests get the reference PDS\'s errors', async (t) => {
  const { expected, actual } = await onBoth(t, scenario)
  assertSameOutcomes(expected, actual, {})
})
