// HTTP headers a browser and a client rely on, on the reference PDS and on berth: CORS
// (preflight and on responses), caching of answers to credentialed requests, getBlob's safety
// headers, and the plain routes. Left out: values that vary by server (dates, request ids),
// parameters of a media type (the reference adds `charset=utf-8`), and `Vary` apart from
// `Authorization` (the reference compresses, so it varies by `Accept-Encoding` too).
import test from 'node:test'
import assert from 'node:assert/strict'
import { AtpAgent } from '@atproto/api'
import { onBoth, assertSameByKey } from '../lib/differential.mjs'
import { randomPng } from '../lib/png.mjs'

const ORIGIN = 'https://app.example.com'
const PNG = randomPng()

/** The named headers of a response (absent ones as null), normalized as described above. */
function pick(res, names) {
  return Object.fromEntries(names.map((n) => {
    let v = res.headers.get(n)
    if (v !== null && n === 'content-type') v = v.split(';')[0].trim()
    if (v !== null && n === 'vary') v = v.toLowerCase().split(/\s*,\s*/).filter((x) => x === 'authorization').join(',') || null
    return [n, v]
  }))
}

const CORS = ['access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers',
  'access-control-allow-credentials', 'access-control-max-age', 'access-control-expose-headers']

async function scenario(url) {
  const agent = new AtpAgent({ service: url })
  await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'hunter2-hunter2' })
  const did = agent.session.did
  const { data: up } = await agent.com.atproto.repo.uploadBlob(PNG, { encoding: 'image/png' })
  await agent.com.atproto.repo.putRecord({
    repo: did, collection: 'app.bsky.actor.profile', rkey: 'self', record: { $type: 'app.bsky.actor.profile', avatar: up.blob },
  })
  const t = {}
  const preflight = await fetch(`${url}/xrpc/com.atproto.repo.createRecord`, {
    method: 'OPTIONS',
    headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type,atproto-proxy' },
  })
  t.preflight = { status: preflight.status, ...pick(preflight, CORS) }
  const plain = ['content-type', 'cache-control', 'vary']
  const get = await fetch(`${url}/xrpc/com.atproto.repo.describeRepo?repo=${did}`, { headers: { origin: ORIGIN } })
  t.corsOnQuery = { status: get.status, ...pick(get, [...CORS, ...plain]) }
  const err = await fetch(`${url}/xrpc/com.atproto.repo.describeRepo?repo=did:plc:ewvi7nxzyoun6zhxrhs64oiz`, { headers: { origin: ORIGIN } })
  t.corsOnError = { status: err.status, ...pick(err, [...CORS, ...plain]) }
  const auth = { authorization: `Bearer ${agent.session.accessJwt}` }
  const session = await fetch(`${url}/xrpc/com.atproto.server.getSession`, { headers: auth })
  t.credentialed = { status: session.status, ...pick(session, plain) }
  const refused = await fetch(`${url}/xrpc/com.atproto.server.getSession`, { headers: { authorization: 'Bearer nope' } })
  t.credentialedRefused = { status: refused.status, ...pick(refused, plain) }
  const blobUrl = `${url}/xrpc/com.atproto.sync.getBlob?did=${did}&cid=${up.blob.ref}`
  const blobHeaders = ['content-type', 'content-length', 'x-content-type-options', 'content-security-policy', 'cache-control', 'vary']
  const disposition = (res) => res.headers.get('content-disposition')?.replace(up.blob.ref.toString(), '<cid>') ?? null
  const blob = await fetch(blobUrl)
  t.getBlob = { status: blob.status, ...pick(blob, blobHeaders), disposition: disposition(blob) }
  const ownBlob = await fetch(blobUrl, { headers: auth })
  t.getBlobCredentialed = { status: ownBlob.status, ...pick(ownBlob, blobHeaders), disposition: disposition(ownBlob) }
  const health = await fetch(`${url}/xrpc/_health`)
  t.health = { status: health.status, ...pick(health, ['content-type']), keys: Object.keys(await health.json()) }
  const robots = await fetch(`${url}/robots.txt`)
  t.robots = { status: robots.status, body: await robots.text() }
  return t
}

test('CORS, caching, blob and plain-route headers match the reference PDS', async (t) => {
  const { expected, actual } = await onBoth(t, scenario)
  // getBlob without credentials: the reference marks it private too (its optional-auth check
  // marks every answer); berth only marks answers to credentialed requests, so public blobs
  // stay cacheable.
  assert.equal(expected.getBlob['cache-control'], 'private')
  assert.equal(actual.getBlob['cache-control'], null)
  delete expected.getBlob['cache-control']
  delete actual.getBlob['cache-control']
  delete expected.getBlob.vary
  delete actual.getBlob.vary
  assertSameByKey(expected, actual)
})
