// The reference PDS harness works: the official client creates an account on the reference
// PDS, writes a post and a profile with an avatar blob, reads them back, and the account's
// DID document in the reference PLC points at that PDS. Berth-side tests reuse this harness.
import test from 'node:test'
import assert from 'node:assert/strict'
import { AtpAgent } from '@atproto/api'
import { startReferencePlc, startReferencePds } from '../lib/harness.mjs'
import { randomPng } from '../lib/png.mjs'

test('@atproto/api against the reference PDS', async (t) => {
  const plc = await startReferencePlc(t)
  const pds = await startReferencePds(t, { plcUrl: plc.url })
  assert.match(pds.url, /^http:\/\/localhost:\d+$/)
  assert.equal(pds.env.PDS_DID_PLC_URL, plc.url)

  const agent = new AtpAgent({ service: pds.url })
  await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'hunter2-hunter2' })
  const did = agent.session.did
  assert.match(did, /^did:plc:[a-z2-7]{24}$/)

  const post = await agent.post({ text: 'hello from the reference', createdAt: new Date().toISOString() })
  assert.match(post.uri, new RegExp(`^at://${did}/app\\.bsky\\.feed\\.post/[a-z2-7]{13}$`))

  const png = randomPng()
  assert.ok(png.length >= 1024 && png.length < 2048, `PNG is ${png.length} bytes`)
  const { data: uploaded } = await agent.uploadBlob(png, { encoding: 'image/png' })
  assert.equal(uploaded.blob.mimeType, 'image/png')
  assert.equal(uploaded.blob.size, png.length)
  await agent.upsertProfile((existing) => ({ ...existing, displayName: 'Alice', avatar: uploaded.blob }))

  const { data: profile } = await agent.com.atproto.repo.getRecord({ repo: did, collection: 'app.bsky.actor.profile', rkey: 'self' })
  assert.equal(profile.value.displayName, 'Alice')
  assert.equal(profile.value.avatar.ref.toString(), uploaded.blob.ref.toString())

  const blob = await fetch(`${pds.url}/xrpc/com.atproto.sync.getBlob?did=${did}&cid=${uploaded.blob.ref}`)
  assert.equal(blob.status, 200)
  assert.deepEqual(Buffer.from(await blob.arrayBuffer()), png)

  const { data: posts } = await agent.com.atproto.repo.listRecords({ repo: did, collection: 'app.bsky.feed.post' })
  assert.deepEqual(posts.records.map((r) => r.uri), [post.uri])
  assert.equal(posts.records[0].value.text, 'hello from the reference')
  const { data: described } = await agent.com.atproto.repo.describeRepo({ repo: did })
  assert.deepEqual(described.collections.sort(), ['app.bsky.actor.profile', 'app.bsky.feed.post'])

  // The DID document in the PLC directory names this PDS and handle.
  const res = await fetch(`${plc.url}/${did}`)
  assert.equal(res.status, 200)
  const doc = await res.json()
  assert.equal(doc.id, did)
  assert.deepEqual(doc.alsoKnownAs, ['at://alice.test'])
  const svc = doc.service.find((s) => s.id === '#atproto_pds')
  assert.equal(svc.type, 'AtprotoPersonalDataServer')
  assert.equal(svc.serviceEndpoint, pds.url)
})
