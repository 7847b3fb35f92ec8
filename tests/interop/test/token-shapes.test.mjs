// The JWTs a client and other services receive (session access and refresh tokens, app
// password sessions, service auth tokens), decoded and compared between the reference PDS and
// berth: header fields, claim names and types, scopes, lifetimes and audiences.
import test from 'node:test'
import { AtpAgent } from '@atproto/api'
import { onBoth, assertSameByKey } from '../lib/differential.mjs'

const PASSWORD = 'hunter2-hunter2'

const decode = (jwt) => {
  const [h, p] = jwt.split('.')
  const json = (s) => JSON.parse(Buffer.from(s, 'base64url').toString())
  return { header: json(h), claims: json(p) }
}

/** A token's comparable parts: header, claim names and types, and the values that don't vary. */
function summary(jwt, { did, serviceDid }) {
  const { header, claims } = decode(jwt)
  const out = {
    header,
    claims: Object.fromEntries(Object.keys(claims).sort().map((k) => [k, typeof claims[k]])),
    lifetime: claims.exp - claims.iat,
  }
  for (const k of ['scope', 'lxm']) if (k in claims) out[k] = claims[k]
  // Who the token is for and from, in terms of each server's own identifiers.
  const name = (v) => (v === did ? 'account' : v === serviceDid ? 'service' : v)
  for (const k of ['sub', 'aud', 'iss']) if (k in claims) out[k] = name(claims[k])
  return out
}

async function scenario(url, serviceDid) {
  const agent = new AtpAgent({ service: url })
  await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: PASSWORD })
  const did = agent.session.did
  const ids = { did, serviceDid }
  const out = {}
  out.signupAccess = summary(agent.session.accessJwt, ids)
  out.signupRefresh = summary(agent.session.refreshJwt, ids)
  const login = await agent.com.atproto.server.createSession({ identifier: 'alice.test', password: PASSWORD })
  out.loginAccess = summary(login.data.accessJwt, ids)
  out.loginRefresh = summary(login.data.refreshJwt, ids)
  const { data: app } = await agent.com.atproto.server.createAppPassword({ name: 'bot' })
  const { data: priv } = await agent.com.atproto.server.createAppPassword({ name: 'chat', privileged: true })
  const appLogin = await agent.com.atproto.server.createSession({ identifier: 'alice.test', password: app.password })
  out.appAccess = summary(appLogin.data.accessJwt, ids)
  out.appRefresh = summary(appLogin.data.refreshJwt, ids)
  const privLogin = await agent.com.atproto.server.createSession({ identifier: 'alice.test', password: priv.password })
  out.privilegedAccess = summary(privLogin.data.accessJwt, ids)
  const refreshed = await fetch(`${url}/xrpc/com.atproto.server.refreshSession`, {
    method: 'POST', headers: { authorization: `Bearer ${login.data.refreshJwt}` },
  }).then((r) => r.json())
  out.refreshedAccess = summary(refreshed.accessJwt, ids)
  out.refreshedRefresh = summary(refreshed.refreshJwt, ids)
  const sa = async (params) => {
    const { data } = await agent.com.atproto.server.getServiceAuth(params)
    return summary(data.token, ids)
  }
  out.serviceAuthPlain = await sa({ aud: 'did:web:api.example.com' })
  out.serviceAuthLxm = await sa({ aud: 'did:web:api.example.com#bsky_appview', lxm: 'app.bsky.feed.getTimeline' })
  out.serviceAuthExp = await sa({ aud: 'did:web:api.example.com', lxm: 'com.atproto.repo.uploadBlob', exp: Math.floor(Date.now() / 1000) + 1800 })
  return out
}

test('session and service tokens have the reference PDS\'s shape', async (t) => {
  const { expected, actual } = await onBoth(t, (url, server) => scenario(url, server.env.PDS_SERVICE_DID))
  assertSameByKey(expected, actual)
})
