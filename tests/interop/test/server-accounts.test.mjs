// The official client (@atproto/api) signs up, logs in, refreshes and logs out on berth,
// whose DIDs are registered at the reference PLC directory (@did-plc/server).
import test from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { AtpAgent } from '@atproto/api'
import { startReferencePlc, startBerth } from '../lib/harness.mjs'

test('@atproto/api accounts and sessions against berth + the reference PLC', async (t) => {
  const plc = await startReferencePlc(t)
  const pds = await startBerth(t, { plcUrl: plc.url })

  const agent = new AtpAgent({ service: pds.url })
  const desc = await agent.com.atproto.server.describeServer()
  assert.deepEqual(desc.data.availableUserDomains, ['.test'])

  const created = await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'hunter2-hunter2' })
  const did = created.data.did
  assert.match(did, /^did:plc:[a-z2-7]{24}$/)
  assert.equal(agent.session?.did, did)

  // The reference PLC accepted our genesis operation and serves the document.
  const doc = await (await fetch(`${plc.url}/${did}`)).json()
  assert.deepEqual(doc.alsoKnownAs, ['at://alice.test'])
  assert.equal(doc.service[0].serviceEndpoint, pds.url)
  const audit = await (await fetch(`${plc.url}/${did}/log/audit`)).json()
  assert.equal(audit.length, 1)

  // A second client logs in with the password, by handle and by email.
  for (const identifier of ['alice.test', 'alice@example.com']) {
    const other = new AtpAgent({ service: pds.url })
    const login = await other.login({ identifier, password: 'hunter2-hunter2' })
    assert.equal(login.data.did, did)
    const me = await other.com.atproto.server.getSession()
    assert.equal(me.data.handle, 'alice.test')
    assert.equal(me.data.email, 'alice@example.com')
  }

  // Refresh through the client's own session manager; the new access token works.
  const before = agent.session.refreshJwt
  await agent.sessionManager.refreshSession()
  assert.notEqual(agent.session.refreshJwt, before)
  const me = await agent.com.atproto.server.getSession()
  assert.equal(me.data.did, did)

  // Wrong password: the client sees AuthenticationRequired.
  const stranger = new AtpAgent({ service: pds.url })
  await assert.rejects(stranger.login({ identifier: 'alice.test', password: 'wrong' }), (e) => e.error === 'AuthenticationRequired')

  // Handle taken, invalid handle: the reference's error names reach the client (a taken handle
  // at sign-up is InvalidRequest, as the reference's own check names it).
  await assert.rejects(
    new AtpAgent({ service: pds.url }).createAccount({ handle: 'alice.test', email: 'x@example.com', password: 'pw-pw-pw-pw' }),
    (e) => e.error === 'InvalidRequest' && /Handle already taken/.test(e.message),
  )
  await assert.rejects(
    new AtpAgent({ service: pds.url }).createAccount({ handle: 'al.test', email: 'y@example.com', password: 'pw-pw-pw-pw' }),
    (e) => e.error === 'InvalidHandle',
  )

  // Change the handle through the client; the reference PLC and resolveHandle follow.
  await agent.com.atproto.identity.updateHandle({ handle: 'alice2.test' })
  const resolved = await agent.com.atproto.identity.resolveHandle({ handle: 'alice2.test' })
  assert.equal(resolved.data.did, did)
  const doc2 = await (await fetch(`${plc.url}/${did}`)).json()
  assert.deepEqual(doc2.alsoKnownAs, ['at://alice2.test'])
  await assert.rejects(agent.com.atproto.identity.resolveHandle({ handle: 'alice.test' }), (e) => e.error === 'HandleNotFound')
  // fetch() drops a custom Host header, so ask with node:http.
  const wellKnown = await new Promise((resolve, reject) => {
    http.get(`${pds.url}/.well-known/atproto-did`, { headers: { host: 'alice2.test' } }, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve(body))
    }).on('error', reject)
  })
  assert.equal(wellKnown.trim(), did)

  // Log out: the refresh token stops working.
  const refreshJwt = agent.session.refreshJwt
  await agent.com.atproto.server.deleteSession(undefined, { headers: { authorization: `Bearer ${refreshJwt}` } })
  const res = await fetch(`${pds.url}/xrpc/com.atproto.server.refreshSession`, { method: 'POST', headers: { authorization: `Bearer ${refreshJwt}` } })
  assert.equal(res.status, 400)
  assert.equal((await res.json()).error, 'ExpiredToken')
})
