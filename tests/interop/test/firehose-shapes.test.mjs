// The firehose a relay reads from the reference PDS and from berth, after the same account's
// life: sign-up, record creates, an update, a delete, a batch, a blob, a handle change,
// deactivation and reactivation. Each server's events for the account must come in the same
// order, of the same kinds, with the same shape (keys and types, nested), the same op actions
// and collections, and the same account and identity values.
import test from 'node:test'
import assert from 'node:assert/strict'
import { AtpAgent } from '@atproto/api'
import { Subscription } from '@atproto/xrpc-server'
import { randomPng } from '../lib/png.mjs'
import { onBoth } from '../lib/differential.mjs'

const NOW = '2026-11-23T10:00:00.000Z'
const post = (text, extra = {}) => ({ $type: 'app.bsky.feed.post', text, createdAt: NOW, ...extra })

function shape(v) {
  if (v === null || v === undefined) return String(v)
  if (v instanceof Uint8Array) return 'bytes'
  if (typeof v === 'object' && v.multihash && v.version !== undefined) return 'cid'
  if (Array.isArray(v)) return v.length ? [shape(v[0])] : []
  if (typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, shape(v[k])]))
  return typeof v
}

const kind = (e) => ('ops' in e ? 'commit' : 'active' in e ? 'account' : 'blocks' in e ? 'sync' : 'identity')

/** What is compared of one event: its kind and shape, and the values that don't vary by server. */
function summary(e) {
  const out = { kind: kind(e), shape: shape(e) }
  if (out.kind === 'commit') {
    out.ops = e.ops.map((op) => [op.action, op.path.split('/')[0], op.cid === null ? null : 'cid', op.prev ? 'prev' : null])
    out.since = e.since === null ? null : 'rev'
  }
  if (out.kind === 'account') Object.assign(out, { active: e.active, status: e.status ?? null })
  if (out.kind === 'identity') out.handle = e.handle ?? null
  return out
}

async function scenario(url) {
  const events = []
  const abort = new AbortController()
  const sub = new Subscription({
    service: url.replace('http', 'ws'),
    method: 'com.atproto.sync.subscribeRepos',
    getParams: () => ({}),
    validate: (v) => v,
    signal: abort.signal,
  })
  const reading = (async () => {
    try {
      for await (const evt of sub) events.push(evt)
    } catch (e) {
      if (e?.name !== 'AbortError') throw e
    }
  })()
  // Let the subscription connect before anything happens.
  await new Promise((r) => setTimeout(r, 500))

  const agent = new AtpAgent({ service: url })
  await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'hunter2-hunter2' })
  const repo = agent.session.did
  const R = agent.com.atproto.repo
  const a = await R.createRecord({ repo, collection: 'app.bsky.feed.post', record: post('one') })
  await R.createRecord({ repo, collection: 'app.bsky.feed.post', record: post('two') })
  await R.putRecord({ repo, collection: 'app.bsky.feed.post', rkey: a.data.uri.split('/').pop(), record: post('one, edited') })
  await R.deleteRecord({ repo, collection: 'app.bsky.feed.post', rkey: a.data.uri.split('/').pop() })
  await R.applyWrites({
    repo,
    writes: [
      { $type: 'com.atproto.repo.applyWrites#create', collection: 'com.example.thing', rkey: 'x', value: { n: 1 } },
      { $type: 'com.atproto.repo.applyWrites#create', collection: 'app.bsky.graph.follow', value: { $type: 'app.bsky.graph.follow', subject: 'did:plc:ewvi7nxzyoun6zhxrhs64oiz', createdAt: NOW } },
    ],
  })
  const { data: up } = await R.uploadBlob(randomPng(), { encoding: 'image/png' })
  await R.putRecord({ repo, collection: 'app.bsky.actor.profile', rkey: 'self', record: { $type: 'app.bsky.actor.profile', avatar: up.blob } })
  await agent.com.atproto.identity.updateHandle({ handle: 'alice2.test' })
  await agent.com.atproto.server.deactivateAccount({})
  await agent.com.atproto.server.activateAccount()
  await R.createRecord({ repo, collection: 'app.bsky.feed.post', record: post('back') })

  // Both servers deliver within moments; wait for the last commit to arrive.
  for (let i = 0; i < 50; i++) {
    const mine = events.filter((e) => (e.repo ?? e.did) === repo)
    if (mine.length && kind(mine[mine.length - 1]) === 'commit' && mine.filter((e) => kind(e) === 'commit').length >= 9) break
    await new Promise((r) => setTimeout(r, 100))
  }
  abort.abort()
  await reading
  return events.filter((e) => (e.repo ?? e.did) === repo).map(summary)
}

test('the firehose carries the same events, in the same order and shape, as the reference PDS\'s', async (t) => {
  const { expected, actual } = await onBoth(t, scenario)
  assert.ok(expected.length >= 14, `the reference sent only ${expected.length} events`)
  const diffs = []
  for (let i = 0; i < Math.max(expected.length, actual.length); i++) {
    if (JSON.stringify(actual[i]) !== JSON.stringify(expected[i])) {
      diffs.push(`event ${i}:\n  berth     ${JSON.stringify(actual[i])}\n  reference ${JSON.stringify(expected[i])}`)
    }
  }
  assert.deepEqual(diffs, [])
})
