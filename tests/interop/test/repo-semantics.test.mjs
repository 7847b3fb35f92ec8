// Edge cases of record writes, many of them valid: existing rkeys, several writes to one key in
// one applyWrites, swaps that hold, rkey and datetime and format rules, open and closed unions,
// validate=false. Sent as raw HTTP to the reference PDS and to berth; each step's status, error
// name and validation verdicts must match, and so must the records the repo ends with.
import test from 'node:test'
import assert from 'node:assert/strict'
import { AtpAgent } from '@atproto/api'
import { onBoth, rawCaller, assertSameOutcomes } from '../lib/differential.mjs'

const NOW = '2026-11-23T10:00:00.000Z'
const post = (text, extra = {}) => ({ $type: 'app.bsky.feed.post', text, createdAt: NOW, ...extra })
const POST = 'app.bsky.feed.post'
const A = 'com.atproto.repo.applyWrites'

async function scenario(url) {
  const agent = new AtpAgent({ service: url })
  await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'hunter2-hunter2' })
  const repo = agent.session.did
  const { post: call } = rawCaller(url, agent.session.accessJwt, { detail: true })
  const create = (record, extra = {}) => call('com.atproto.repo.createRecord', { repo, collection: POST, record, ...extra })
  const put = (rkey, record, extra = {}) => call('com.atproto.repo.putRecord', { repo, collection: POST, rkey, record, ...extra })
  const apply = (writes, extra = {}) => call(A, { repo, writes, ...extra })
  const latest = async () => (await agent.com.atproto.sync.getLatestCommit({ did: repo })).data.cid
  const t = {}

  // Keys.
  t.createWithRkey = await create(post('a'), { rkey: '3kaaaaaaaaaa2' })
  t.createExistingRkey = await create(post('b'), { rkey: '3kaaaaaaaaaa2' })
  t.createPostRkeyNotTid = await create(post('c'), { rkey: 'self' })
  t.createPostRkeyNotTidUnvalidated = await create(post('c'), { rkey: 'not-a-tid', validate: false })
  t.createUnknownCollectionAnyRkey = await call('com.atproto.repo.createRecord', { repo, collection: 'com.example.thing', rkey: 'a:b~c_d.e-f', record: { x: 1 } })
  t.createCollectionTooLong = await call('com.atproto.repo.createRecord', { repo, collection: `com.example.${'a'.repeat(320)}`, record: { x: 1 } })
  // One key several times in one applyWrites.
  t.applyTwoCreatesOneKey = await apply([
    { $type: `${A}#create`, collection: POST, rkey: '3kbbbbbbbbbb2', value: post('x') },
    { $type: `${A}#create`, collection: POST, rkey: '3kbbbbbbbbbb2', value: post('y') },
  ])
  t.applyCreateThenDelete = await apply([
    { $type: `${A}#create`, collection: POST, rkey: '3kcccccccccc2', value: post('x') },
    { $type: `${A}#delete`, collection: POST, rkey: '3kcccccccccc2' },
  ])
  t.applyUpdateThenDelete = await apply([
    { $type: `${A}#update`, collection: POST, rkey: '3kaaaaaaaaaa2', value: post('edited') },
    { $type: `${A}#delete`, collection: POST, rkey: '3kaaaaaaaaaa2' },
  ])
  t.applyNothing = await apply([])
  // Swaps that hold.
  const head = await latest()
  t.applySwapCommitHolds = await apply([{ $type: `${A}#create`, collection: POST, rkey: '3kdddddddddd2', value: post('x') }], { swapCommit: head })
  t.putSwapNullNew = await put('3keeeeeeeeee2', post('new'), { swapRecord: null })
  const { data: current } = await agent.com.atproto.repo.getRecord({ repo, collection: POST, rkey: '3keeeeeeeeee2' })
  t.putSwapRecordHolds = await put('3keeeeeeeeee2', post('newer'), { swapRecord: current.cid })
  t.deleteSwapCommitStale = await call('com.atproto.repo.deleteRecord', { repo, collection: POST, rkey: '3keeeeeeeeee2', swapCommit: head })
  // Datetimes and formats.
  t.dateNoMillis = await create(post('d', { createdAt: '2026-11-23T10:00:00Z' }))
  t.dateOffset = await create(post('d', { createdAt: '2026-11-23T10:00:00+01:00' }))
  t.dateNegativeZero = await create(post('d', { createdAt: '2026-11-23T10:00:00.000-00:00' }))
  t.dateNoZone = await create(post('d', { createdAt: '2026-11-23T10:00:00' }))
  t.dateSpace = await create(post('d', { createdAt: '2026-11-23 10:00:00Z' }))
  t.langBad = await create(post('l', { langs: ['not a language!'] }))
  t.langGood = await create(post('l', { langs: ['en', 'pt-BR'] }))
  t.langsTooMany = await create(post('l', { langs: ['en', 'de', 'fr', 'es'] }))
  t.likeBadUri = await call('com.atproto.repo.createRecord', {
    repo, collection: 'app.bsky.feed.like', record: { $type: 'app.bsky.feed.like', subject: { uri: 'not-a-uri', cid: current.cid }, createdAt: NOW },
  })
  t.followBadDid = await call('com.atproto.repo.createRecord', {
    repo, collection: 'app.bsky.graph.follow', record: { $type: 'app.bsky.graph.follow', subject: 'did:FOO:bar', createdAt: NOW },
  })
  t.followHandleSubject = await call('com.atproto.repo.createRecord', {
    repo, collection: 'app.bsky.graph.follow', record: { $type: 'app.bsky.graph.follow', subject: 'alice.test', createdAt: NOW },
  })
  // Objects and unions.
  t.extraField = await create(post('e', { somethingNew: 1 }))
  t.embedUnknownType = await create(post('e', { embed: { $type: 'com.example.embed', x: 1 } }))
  t.embedNoType = await create(post('e', { embed: { x: 1 } }))
  t.embedKnownInvalid = await create(post('e', { embed: { $type: 'app.bsky.embed.external', external: { uri: 'https://example.com' } } }))
  t.facetBadIndex = await create(post('hello', {
    facets: [{ index: { byteStart: 'a', byteEnd: 2 }, features: [{ $type: 'app.bsky.richtext.facet#link', uri: 'https://example.com' }] }],
  }))
  t.facetUnknownFeature = await create(post('hello', {
    facets: [{ index: { byteStart: 0, byteEnd: 2 }, features: [{ $type: 'com.example.feature' }] }],
  }))
  t.textNotString = await create(post(5))
  t.textGraphemes = await create(post('👨‍👩‍👧‍👦'.repeat(300)))
  t.textGraphemesOver = await create(post('👨‍👩‍👧‍👦'.repeat(301)))
  t.unvalidatedInvalid = await create({ $type: POST, text: 5 }, { validate: false })
  t.profileUnvalidated = await call('com.atproto.repo.putRecord', {
    repo, collection: 'app.bsky.actor.profile', rkey: 'self', validate: false, record: { $type: 'app.bsky.actor.profile', displayName: 7 },
  })
  t.applyMixedValidation = await apply([
    { $type: `${A}#create`, collection: POST, value: post('v') },
    { $type: `${A}#create`, collection: 'com.example.thing', value: { n: 1 } },
  ])
  t.nullField = await create(post('n', { embed: null }))
  t.integerTooBig = await call('com.atproto.repo.createRecord', { repo, collection: 'com.example.thing', record: { n: 2 ** 60 } })
  t.bigBody = await call('com.atproto.repo.createRecord', { repo, collection: 'com.example.thing', record: { s: 'x'.repeat(1_100_000) } })

  // The records the repo ends with (keys and values of the fixed-key ones).
  const records = {}
  for (const collection of [POST, 'com.example.thing', 'app.bsky.actor.profile']) {
    const { data } = await agent.com.atproto.repo.listRecords({ repo, collection, limit: 100 })
    records[collection] = data.records.length
  }
  const fixed = await Promise.all(['3kaaaaaaaaaa2', '3kbbbbbbbbbb2', '3kcccccccccc2', '3kdddddddddd2', '3keeeeeeeeee2', 'not-a-tid'].map(async (rkey) => {
    try {
      const { data } = await agent.com.atproto.repo.getRecord({ repo, collection: POST, rkey })
      return [rkey, data.value.text]
    } catch {
      return [rkey, null]
    }
  }))
  return { t, records, fixed }
}

// Where berth answers differently on purpose, with both sides' outcomes today.
const DELIBERATE = {
  // The reference fails with a 500; berth names the client's mistake.
  createExistingRkey: { reference: { status: 500, error: 'InternalServerError' }, berth: { status: 400, error: 'InvalidRequest' } },
  applyTwoCreatesOneKey: { reference: { status: 500, error: 'InternalServerError' }, berth: { status: 400, error: 'InvalidRequest' } },
  // An integer beyond 2^53: the reference fails to store it (500); berth refuses it (400), so
  // no repo it hosts holds a value that could not move to the reference.
  integerTooBig: { reference: { status: 500, error: 'InternalServerError' }, berth: { status: 400, error: 'InvalidRequest' } },
}

test('record write edge cases behave as on the reference PDS', async (t) => {
  const { expected, actual } = await onBoth(t, scenario)
  assertSameOutcomes(expected.t, actual.t, DELIBERATE, { mayPass: Object.keys(expected.t).length })
  assert.deepEqual(actual.records, expected.records)
  assert.deepEqual(actual.fixed, expected.fixed)
})
