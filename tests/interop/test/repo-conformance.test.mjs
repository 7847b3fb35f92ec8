// The same record-level scenario, driven by the official client (@atproto/api), against the
// reference PDS and against berth. Each step's outcome (success shape or error name and HTTP
// status) is recorded; berth's transcript must equal the reference's.
import test from 'node:test'
import { AtpAgent } from '@atproto/api'
import { randomPng } from '../lib/png.mjs'
import { onBoth, assertSameByKey } from '../lib/differential.mjs'

const NOW = '2026-11-23T10:00:00.000Z'
const post = (text, extra = {}) => ({ $type: 'app.bsky.feed.post', text, createdAt: NOW, ...extra })

/** Runs `fn`; returns 'ok' plus a summary, or the XRPC error name and status. */
async function outcome(fn) {
  try {
    const res = await fn()
    return { ok: true, ...(res ?? {}) }
  } catch (e) {
    if (e?.error === undefined) throw e
    return { ok: false, error: e.error, status: e.status }
  }
}

async function scenario(url) {
  const agent = new AtpAgent({ service: url })
  await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'hunter2-hunter2' })
  const repo = agent.session.did
  const R = agent.com.atproto.repo
  const t = {}

  const created = await R.createRecord({ repo, collection: 'app.bsky.feed.post', record: post('hello') })
  const rkey = created.data.uri.split('/').pop()
  t.create = {
    uriShape: created.data.uri === `at://${repo}/app.bsky.feed.post/${rkey}`,
    rkeyIsTid: /^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$/.test(rkey),
    hasCommit: typeof created.data.commit?.cid === 'string' && typeof created.data.commit?.rev === 'string',
    validationStatus: created.data.validationStatus,
  }
  t.get = await outcome(async () => {
    const r = await R.getRecord({ repo, collection: 'app.bsky.feed.post', rkey })
    return { text: r.data.value.text, sameCid: r.data.cid === created.data.cid }
  })
  t.getByHandle = await outcome(async () => {
    const r = await R.getRecord({ repo: 'alice.test', collection: 'app.bsky.feed.post', rkey })
    return { text: r.data.value.text }
  })
  t.getWrongCid = await outcome(() =>
    R.getRecord({ repo, collection: 'app.bsky.feed.post', rkey, cid: 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm' }))
  t.getMissing = await outcome(() => R.getRecord({ repo, collection: 'app.bsky.feed.post', rkey: '3kzzzzzzzzzzz' }))
  t.putSame = await outcome(async () => {
    const r = await R.putRecord({ repo, collection: 'app.bsky.feed.post', rkey, record: post('hello') })
    return { hasCommit: r.data.commit !== undefined, sameCid: r.data.cid === created.data.cid }
  })
  t.putEdit = await outcome(async () => {
    const r = await R.putRecord({ repo, collection: 'app.bsky.feed.post', rkey, record: post('edited'), swapRecord: created.data.cid })
    return { hasCommit: r.data.commit !== undefined, validationStatus: r.data.validationStatus }
  })
  t.putStaleSwap = await outcome(() =>
    R.putRecord({ repo, collection: 'app.bsky.feed.post', rkey, record: post('again'), swapRecord: created.data.cid }))
  t.putSwapNullExisting = await outcome(() =>
    R.putRecord({ repo, collection: 'app.bsky.feed.post', rkey, record: post('again'), swapRecord: null }))
  t.createTooLong = await outcome(() => R.createRecord({ repo, collection: 'app.bsky.feed.post', record: post('x'.repeat(301)) }))
  t.createNoDate = await outcome(() => R.createRecord({ repo, collection: 'app.bsky.feed.post', record: { text: 'no date' } }))
  t.createWrongType = await outcome(() =>
    R.createRecord({ repo, collection: 'app.bsky.feed.post', record: { $type: 'app.bsky.feed.like', text: 'x', createdAt: NOW } }))
  t.createUnknownValidated = await outcome(() =>
    R.createRecord({ repo, collection: 'com.example.thing', validate: true, record: { a: 1 } }))
  t.createUnknown = await outcome(async () => {
    const r = await R.createRecord({ repo, collection: 'com.example.thing', record: { a: 1 } })
    return { validationStatus: r.data.validationStatus }
  })
  t.createUnvalidated = await outcome(async () => {
    const r = await R.createRecord({ repo, collection: 'app.bsky.feed.post', validate: false, record: { text: 'no date' } })
    return { validationStatus: r.data.validationStatus ?? null }
  })
  t.createBadRkey = await outcome(() =>
    R.createRecord({ repo, collection: 'app.bsky.feed.post', rkey: 'has space', record: post('x') }))
  t.createProfileWrongRkey = await outcome(() =>
    R.createRecord({ repo, collection: 'app.bsky.actor.profile', rkey: 'notself', record: { $type: 'app.bsky.actor.profile', displayName: 'A' } }))
  t.createStaleCommit = await outcome(() =>
    R.createRecord({ repo, collection: 'app.bsky.feed.post', record: post('x'), swapCommit: created.data.commit.cid }))
  t.createOtherRepo = await outcome(() =>
    R.createRecord({ repo: 'did:plc:ewvi7nxzyoun6zhxrhs64oiz', collection: 'app.bsky.feed.post', record: post('x') }))
  t.createUnknownBlob = await outcome(() =>
    R.createRecord({
      repo, collection: 'com.example.thing',
      record: { img: { $type: 'blob', ref: { $link: 'bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy' }, mimeType: 'image/png', size: 10 } },
    }))
  t.applyTooMany = await outcome(() =>
    R.applyWrites({
      repo,
      writes: Array.from({ length: 201 }, (_, i) => ({ $type: 'com.atproto.repo.applyWrites#create', collection: 'app.bsky.feed.post', rkey: `r${i}`, value: post('x') })),
    }))
  t.applyMixed = await outcome(async () => {
    const r = await R.applyWrites({
      repo,
      writes: [
        { $type: 'com.atproto.repo.applyWrites#create', collection: 'app.bsky.feed.post', rkey: '3kaaaaaaaaaa2', value: post('a') },
        { $type: 'com.atproto.repo.applyWrites#create', collection: 'com.example.thing', rkey: 'k1', value: { n: 1 } },
        { $type: 'com.atproto.repo.applyWrites#update', collection: 'app.bsky.feed.post', rkey, value: post('updated') },
        { $type: 'com.atproto.repo.applyWrites#delete', collection: 'com.example.thing', rkey: 'k1' },
      ],
    })
    return { types: r.data.results.map((x) => x.$type), statuses: r.data.results.map((x) => x.validationStatus ?? null), hasCommit: !!r.data.commit }
  })
  t.deleteMissing = await outcome(async () => {
    const r = await R.deleteRecord({ repo, collection: 'app.bsky.feed.post', rkey: '3kzzzzzzzzzzz' })
    return { hasCommit: r.data.commit !== undefined }
  })
  t.deleteStaleSwap = await outcome(() =>
    R.deleteRecord({ repo, collection: 'app.bsky.feed.post', rkey, swapRecord: created.data.cid }))
  t.delete = await outcome(async () => {
    const r = await R.deleteRecord({ repo, collection: 'app.bsky.feed.post', rkey: '3kaaaaaaaaaa2' })
    return { hasCommit: r.data.commit !== undefined }
  })

  // Follows of one subject are de-duplicated (the earlier one is deleted in the same commit).
  const subject = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz'
  for (let i = 0; i < 2; i++) {
    await R.createRecord({ repo, collection: 'app.bsky.graph.follow', record: { $type: 'app.bsky.graph.follow', subject, createdAt: NOW } })
  }
  t.follows = (await R.listRecords({ repo, collection: 'app.bsky.graph.follow' })).data.records.length

  // Listing order and cursors.
  for (let i = 0; i < 5; i++) {
    await R.createRecord({ repo, collection: 'app.bsky.feed.post', rkey: `3kbbbbbbbbbb${i + 2}`, record: post(`p${i}`) })
  }
  const page1 = await R.listRecords({ repo, collection: 'app.bsky.feed.post', limit: 3 })
  const page2 = await R.listRecords({ repo, collection: 'app.bsky.feed.post', limit: 3, cursor: page1.data.cursor })
  const reversed = await R.listRecords({ repo, collection: 'app.bsky.feed.post', reverse: true, limit: 2 })
  t.list = {
    page1: page1.data.records.map((r) => r.value.text),
    page2: page2.data.records.map((r) => r.value.text),
    reversed: reversed.data.records.map((r) => r.value.text),
    cursorIsRkey: page1.data.cursor === page1.data.records[2].uri.split('/').pop(),
  }
  t.listBadLimit = await outcome(() => R.listRecords({ repo, collection: 'app.bsky.feed.post', limit: 101 }))

  await agent.upsertProfile((p) => ({ ...(p ?? {}), displayName: 'Alice' }))
  t.profile = (await R.getRecord({ repo, collection: 'app.bsky.actor.profile', rkey: 'self' })).data.value.displayName
  const desc = await R.describeRepo({ repo: 'alice.test' })
  t.describe = {
    collections: desc.data.collections,
    handle: desc.data.handle,
    handleIsCorrect: desc.data.handleIsCorrect,
    didDocId: desc.data.didDoc?.id === repo,
  }
  t.describeMissing = await outcome(() => R.describeRepo({ repo: 'nobody.test' }))

  // Blobs: upload (the type is sniffed), reference from a post and the profile, read back.
  const png = randomPng()
  const up = await agent.uploadBlob(png, { encoding: 'application/octet-stream' })
  const blob = up.data.blob
  t.upload = { mimeType: blob.mimeType, size: blob.size === png.length, type: blob.original?.$type ?? 'blob' }
  t.wrongMime = await outcome(() =>
    R.createRecord({ repo, collection: 'com.example.thing', record: { img: { $type: 'blob', ref: { $link: blob.ref.toString() }, mimeType: 'image/jpeg', size: png.length } } }))
  t.wrongSize = await outcome(() =>
    R.createRecord({ repo, collection: 'com.example.thing', record: { img: { $type: 'blob', ref: { $link: blob.ref.toString() }, mimeType: 'image/png', size: png.length + 1 } } }))
  const withImage = await outcome(async () => {
    const r = await agent.post({ text: 'look', createdAt: NOW, embed: { $type: 'app.bsky.embed.images', images: [{ image: blob, alt: 'noise' }] } })
    return { uri: r.uri }
  })
  t.postWithImage = { ok: withImage.ok }
  await agent.upsertProfile((p) => ({ ...(p ?? {}), avatar: blob }))
  const readBlob = async () => {
    const res = await fetch(`${url}/xrpc/com.atproto.sync.getBlob?did=${repo}&cid=${blob.ref.toString()}`)
    const bytes = Buffer.from(await res.arrayBuffer())
    return {
      status: res.status,
      same: res.status === 200 && bytes.equals(png),
      type: res.headers.get('content-type'),
      nosniff: res.headers.get('x-content-type-options'),
      csp: res.headers.get('content-security-policy'),
    }
  }
  t.getBlob = await readBlob()
  t.missingBlobs = (await R.listMissingBlobs({})).data.blobs.length
  // The post goes; the profile still references the blob, so it stays.
  if (withImage.ok) {
    await R.deleteRecord({ repo, collection: 'app.bsky.feed.post', rkey: withImage.uri.split('/').pop() })
  }
  t.getBlobAfterDelete = (await readBlob()).status
  // The profile drops its avatar: now nothing references the blob.
  await agent.upsertProfile((p) => ({ displayName: p?.displayName }))
  t.getBlobUnreferenced = (await readBlob()).status
  return t
}

test('record and blob methods behave as the reference PDS', async (t) => {
  const { expected, actual } = await onBoth(t, scenario)
  assertSameByKey(expected, actual)
})
