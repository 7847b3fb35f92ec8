// The official client (@atproto/api) manages app passwords on berth and logs in with one.
import test from 'node:test'
import assert from 'node:assert/strict'
import { AtpAgent } from '@atproto/api'
import { startReferencePlc, startBerth } from '../lib/harness.mjs'

const scopeOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString()).scope

test('@atproto/api app passwords against berth', async (t) => {
  const plc = await startReferencePlc(t)
  const pds = await startBerth(t, { plcUrl: plc.url })

  const agent = new AtpAgent({ service: pds.url })
  await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'hunter2-hunter2' })
  const did = agent.session.did

  // Create: the client's generated types accept the response.
  const created = await agent.com.atproto.server.createAppPassword({ name: 'phone' })
  assert.equal(created.data.name, 'phone')
  assert.match(created.data.password, /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/)
  assert.equal(created.data.privileged, false)
  assert.ok(!Number.isNaN(Date.parse(created.data.createdAt)))
  const priv = await agent.com.atproto.server.createAppPassword({ name: 'desk', privileged: true })
  assert.equal(priv.data.privileged, true)

  // Log in with the app password: a working session with the app-password scope.
  const phone = new AtpAgent({ service: pds.url })
  const login = await phone.login({ identifier: 'alice.test', password: created.data.password })
  assert.equal(login.data.did, did)
  assert.equal(scopeOf(phone.session.accessJwt), 'com.atproto.appPass')
  const me = await phone.com.atproto.server.getSession()
  assert.equal(me.data.handle, 'alice.test')

  // An app-password session may list but not create app passwords.
  const listed = await phone.com.atproto.server.listAppPasswords()
  assert.deepEqual(listed.data.passwords.map((p) => p.name).sort(), ['desk', 'phone'])
  assert.ok(listed.data.passwords.every((p) => p.password === undefined))
  await assert.rejects(
    phone.com.atproto.server.createAppPassword({ name: 'sneaky' }),
    (e) => e.error === 'InvalidToken' && e.message === 'Bad token scope',
  )

  // Revoke: the app password's session can no longer refresh, and it no longer logs in.
  const phoneRefresh = phone.session.refreshJwt
  await agent.com.atproto.server.revokeAppPassword({ name: 'phone' })
  const res = await fetch(`${pds.url}/xrpc/com.atproto.server.refreshSession`, {
    method: 'POST',
    headers: { authorization: `Bearer ${phoneRefresh}` },
  })
  assert.equal(res.status, 400)
  assert.equal((await res.json()).error, 'ExpiredToken')
  await assert.rejects(
    new AtpAgent({ service: pds.url }).login({ identifier: 'alice.test', password: created.data.password }),
    (e) => e.error === 'AuthenticationRequired',
  )
  const after = await agent.com.atproto.server.listAppPasswords()
  assert.deepEqual(after.data.passwords.map((p) => p.name), ['desk'])
})
