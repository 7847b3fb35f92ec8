// The same records under the same keys, written to the reference PDS and to berth, must come
// out the same: each record's CID (DAG-CBOR bytes), its JSON on getRecord, the repo's MST root
// (commit.data), and the counts checkAccountStatus and describeRepo report. Different DIDs,
// keys and revs aside, the two repos hold identical data.
import test from 'node:test'
import { AtpAgent } from '@atproto/api'
import { readCarWithRoot, def, MemoryBlockstore } from '@atproto/repo'
import { onBoth, assertSameByKey } from '../lib/differential.mjs'

const NOW = '2026-11-23T10:00:00.000Z'
const RECORDS = [
  ['app.bsky.feed.post', '3kaaaaaaaaaa2', { $type: 'app.bsky.feed.post', text: 'plain', createdAt: NOW }],
  ['app.bsky.feed.post', '3kaaaaaaaaab2', {
    $type: 'app.bsky.feed.post', text: 'ünïcödé 👨‍👩‍👧 text with a link https://example.com', createdAt: NOW, langs: ['en', 'pt-BR'],
    facets: [{ index: { byteStart: 0, byteEnd: 8 }, features: [{ $type: 'app.bsky.richtext.facet#link', uri: 'https://example.com' }] }],
  }],
  ['app.bsky.feed.post', '3kaaaaaaaaac2', {
    $type: 'app.bsky.feed.post', text: 'reply', createdAt: NOW,
    reply: {
      root: { uri: 'at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3kaaaaaaaaaa2', cid: 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm' },
      parent: { uri: 'at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3kaaaaaaaaaa2', cid: 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm' },
    },
  }],
  ['app.bsky.graph.follow', '3kaaaaaaaaad2', { $type: 'app.bsky.graph.follow', subject: 'did:plc:ewvi7nxzyoun6zhxrhs64oiz', createdAt: NOW }],
  ['app.bsky.actor.profile', 'self', { $type: 'app.bsky.actor.profile', displayName: 'Alice', description: 'line one\nline two' }],
  ['com.example.thing', 'types', {
    s: '', n: 0, neg: -42, big: 9007199254740991, t: true, f: false, z: null,
    list: [1, 'two', [3], { four: 4 }], nested: { b: { a: {} } },
    bytes: { $bytes: 'aGVsbG8gd29ybGQ' }, link: { $link: 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm' },
    // Key order in the JSON must not matter: DAG-CBOR sorts keys (by length, then bytes).
    zz: 1, a: 2, aaa: 3, B: 4, '': 5,
  }],
  ['com.example.thing', 'long', { text: 'long '.repeat(2000) }],
  ...Array.from({ length: 40 }, (_, i) => ['com.example.many', `k${String(i).padStart(3, '0')}`, { i }]),
]

/** JSON with object keys sorted, at every depth: key order carries no meaning in JSON. */
const sorted = (v) => (Array.isArray(v) ? v.map(sorted)
  : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])])) : v)

async function scenario(url) {
  const agent = new AtpAgent({ service: url })
  await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'hunter2-hunter2' })
  const repo = agent.session.did
  const R = agent.com.atproto.repo
  const out = { cids: {}, values: {} }
  for (const [collection, rkey, record] of RECORDS) {
    const { data } = await R.putRecord({ repo, collection, rkey, record })
    out.cids[`${collection}/${rkey}`] = data.cid
  }
  // Deleting and re-creating leaves the same tree.
  await R.deleteRecord({ repo, collection: 'com.example.many', rkey: 'k017' })
  await R.putRecord({ repo, collection: 'com.example.many', rkey: 'k017', record: { i: 17 } })
  for (const [collection, rkey] of RECORDS.slice(0, 7)) {
    const { data } = await R.getRecord({ repo, collection, rkey })
    out.values[`${collection}/${rkey}`] = sorted(data.value)
  }
  const car = await (await fetch(`${url}/xrpc/com.atproto.sync.getRepo?did=${repo}`)).arrayBuffer()
  const { root, blocks } = await readCarWithRoot(new Uint8Array(car))
  const commit = await new MemoryBlockstore(blocks).readObj(root, def.commit)
  out.mstRoot = commit.data.toString()
  out.carBlocks = blocks.size
  const { data: status } = await agent.com.atproto.server.checkAccountStatus()
  out.status = sorted({ ...status, repoCommit: typeof status.repoCommit, repoRev: typeof status.repoRev })
  const { data: described } = await R.describeRepo({ repo })
  out.described = { collections: described.collections, handleIsCorrect: described.handleIsCorrect }
  return out
}

test('the same records make the same CIDs, values and MST root as on the reference PDS', async (t) => {
  const { expected, actual } = await onBoth(t, scenario)
  assertSameByKey(expected, actual)
})
