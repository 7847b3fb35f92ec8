// Uploads of many kinds of bytes (what MIME type each is given), and records that reference
// blobs rightly and wrongly, sent as raw HTTP to the reference PDS and to berth; each step's
// status, error name, and the uploaded blob's MIME type and size must match.
import test from 'node:test'
import { randomBytes } from 'node:crypto'
import { AtpAgent } from '@atproto/api'
import { randomPng } from '../lib/png.mjs'
import { onBoth, rawCaller, assertSameOutcomes } from '../lib/differential.mjs'

const NOW = '2026-11-23T10:00:00.000Z'
const bytes = (...parts) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))))
// The same bytes for both servers.
const NOISE = randomBytes(300)
const SAMPLES = {
  png: randomPng(),
  jpeg: bytes([0xff, 0xd8, 0xff, 0xe0, 0, 16], 'JFIF\0', NOISE),
  gif: bytes('GIF89a', NOISE),
  webp: bytes('RIFF', [0x24, 0, 0, 0], 'WEBPVP8 ', NOISE),
  mp4: bytes([0, 0, 0, 0x18], 'ftypisom', [0, 0, 2, 0], 'isomiso2', NOISE),
  pdf: bytes('%PDF-1.4\n', NOISE),
  html: bytes('<!DOCTYPE html><html><body>hi</body></html>'),
  svg: bytes('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
  xml: bytes('<?xml version="1.0"?><a/>'),
  script: bytes('#!/bin/sh\necho hi\n'),
  text: bytes('hello world\n'),
  json: bytes('{"a": 1}'),
  binary: bytes([0, 1, 2, 3, 0xfe, 0xff], NOISE),
}

async function scenario(url) {
  const alice = new AtpAgent({ service: url })
  await alice.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'hunter2-hunter2' })
  const bob = new AtpAgent({ service: url })
  await bob.createAccount({ handle: 'bob.test', email: 'bob@example.com', password: 'hunter2-hunter2' })
  const repo = alice.session.did
  const a = rawCaller(url, alice.session.accessJwt, { detail: true })
  const upload = (body, type) => a.post('com.atproto.repo.uploadBlob', body, { type })
  const t = {}
  const refs = {}

  // What each kind of bytes is called, declared as a generic type and as a wrong one.
  for (const [name, body] of Object.entries(SAMPLES)) {
    t[`upload_${name}`] = await upload(body, 'application/octet-stream')
    t[`upload_${name}_declaredPng`] = await upload(body, 'image/png')
  }
  t.uploadEmpty = await upload(new Uint8Array(0), 'image/png')
  t.uploadNoType = await a.post('com.atproto.repo.uploadBlob', SAMPLES.png)
  t.uploadWildcardType = await upload(SAMPLES.png, '*/*')

  // Blob refs as uploads return them, for records.
  const ref = async (agent, body, encoding) => (await agent.com.atproto.repo.uploadBlob(body, { encoding })).data.blob
  refs.png = await ref(alice, SAMPLES.png, 'image/png')
  refs.text = await ref(alice, SAMPLES.text, 'text/plain')
  refs.bobs = await ref(bob, randomPng(), 'image/png')
  const asJson = (b, over = {}) => ({ $type: 'blob', ref: { $link: b.ref.toString() }, mimeType: b.mimeType, size: b.size, ...over })
  const create = (collection, record, extra = {}) => a.post('com.atproto.repo.createRecord', { repo, collection, record, ...extra })
  const profile = (avatar) => a.post('com.atproto.repo.putRecord', {
    repo, collection: 'app.bsky.actor.profile', rkey: 'self', record: { $type: 'app.bsky.actor.profile', avatar },
  })
  const images = (image) => ({
    $type: 'app.bsky.feed.post', text: 'pic', createdAt: NOW,
    embed: { $type: 'app.bsky.embed.images', images: [{ image, alt: '' }] },
  })

  t.refRight = await create('com.example.thing', { b: asJson(refs.png) })
  t.refWrongMime = await create('com.example.thing', { b: asJson(refs.png, { mimeType: 'image/jpeg' }) })
  t.refWrongSize = await create('com.example.thing', { b: asJson(refs.png, { size: refs.png.size + 1 }) })
  t.refOtherAccountsBlob = await create('com.example.thing', { b: asJson(refs.bobs) })
  t.refLegacy = await create('com.example.thing', { b: { cid: refs.png.ref.toString(), mimeType: 'image/png' } })
  t.refNoType = await create('com.example.thing', { b: { ref: { $link: refs.png.ref.toString() }, mimeType: 'image/png', size: refs.png.size } })
  t.refRawLink = await create('com.example.thing', { b: { $link: refs.png.ref.toString() } })
  t.avatarPng = await profile(asJson(refs.png))
  t.avatarText = await profile(asJson(refs.text))
  t.avatarNotBlob = await profile('https://example.com/a.png')
  t.postImagePng = await create('app.bsky.feed.post', images(asJson(refs.png)))
  t.postImageText = await create('app.bsky.feed.post', images(asJson(refs.text)))
  t.postImageWrongMimeUnvalidated = await create('app.bsky.feed.post', images(asJson(refs.png, { mimeType: 'image/gif' })), { validate: false })
  t.listMissingBlobs = await a.get('com.atproto.repo.listMissingBlobs', {})
  return t
}

// Where berth answers differently on purpose, with both sides' outcomes today.
const DELIBERATE = {
  // The reference checks a reference's MIME type and size against the stored blob only while the
  // blob is temporary (here it was made permanent by refRight); berth checks every time, so a
  // record never misstates a blob it names.
  refWrongMime: { reference: { status: 200, error: null, validationStatus: 'unknown' }, berth: { status: 400, error: 'InvalidMimeType' } },
  refWrongSize: { reference: { status: 200, error: null, validationStatus: 'unknown' }, berth: { status: 400, error: 'InvalidSize' } },
  postImageWrongMimeUnvalidated: { reference: { status: 200, error: null }, berth: { status: 400, error: 'InvalidMimeType' } },
}

test('uploads and blob references behave as on the reference PDS', async (t) => {
  const { expected, actual } = await onBoth(t, scenario)
  assertSameOutcomes(expected, actual, DELIBERATE, { mayPass: Object.keys(expected).length })
})
