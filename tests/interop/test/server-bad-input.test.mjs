// Malformed or refused requests to the com.atproto.server and com.atproto.identity methods (sign
// up, sessions, app passwords, service auth, email and account flows, handles, PLC operations),
// sent as raw HTTP to the reference PDS and to berth; each status and XRPC error name must match.
import test from 'node:test'
import assert from 'node:assert/strict'
import { AtpAgent } from '@atproto/api'
import { onBoth, rawCaller, assertSameOutcomes } from '../lib/differential.mjs'

const PASSWORD = 'hunter2-hunter2'

async function scenario(url) {
  const agent = new AtpAgent({ service: url })
  await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: PASSWORD })
  const did = agent.session.did
  const { accessJwt, refreshJwt } = agent.session
  const user = rawCaller(url, accessJwt)
  const anon = rawCaller(url, null)
  const s = 'com.atproto.server'
  const i = 'com.atproto.identity'
  const signup = (input) => anon.post(`${s}.createAccount`, { email: 'bob@example.com', password: PASSWORD, ...input })
  const inAnHour = new Date(Date.now() + 2 * 3600 * 1000)
  const t = {}

  // Sign up.
  t.createAccountBadHandle = await signup({ handle: 'a b.test' })
  t.createAccountTakenHandle = await signup({ handle: 'alice.test' })
  t.createAccountTakenUppercase = await signup({ handle: 'ALICE.test' })
  t.createAccountNoEmail = await anon.post(`${s}.createAccount`, { handle: 'bob.test', password: PASSWORD })
  t.createAccountReserved = await signup({ handle: 'www.test' })
  t.createAccountOtherDomain = await signup({ handle: 'bob.example.com' })
  t.createAccountShortHandle = await signup({ handle: 'ab.test' })
  t.createAccountBadEmail = await signup({ handle: 'bob.test', email: 'not-an-email' })
  t.createAccountTakenEmail = await signup({ handle: 'bob.test', email: 'alice@example.com' })
  t.createAccountNoHandle = await anon.post(`${s}.createAccount`, { email: 'bob@example.com', password: PASSWORD })
  t.createAccountNotJson = await anon.post(`${s}.createAccount`, '{', { type: 'application/json' })
  // Sessions.
  t.createSessionNoIdentifier = await anon.post(`${s}.createSession`, { password: PASSWORD })
  t.createSessionWrongPassword = await anon.post(`${s}.createSession`, { identifier: 'alice.test', password: 'wrong-wrong' })
  t.createSessionUnknownUser = await anon.post(`${s}.createSession`, { identifier: 'nobody.test', password: PASSWORD })
  t.createSessionEmptyBody = await anon.post(`${s}.createSession`, '', { type: 'application/json' })
  t.getSessionNoAuth = await anon.get(`${s}.getSession`, {})
  t.getSessionGarbageToken = await anon.get(`${s}.getSession`, {}, { auth: 'Bearer abc.def.ghi' })
  t.getSessionRefreshToken = await anon.get(`${s}.getSession`, {}, { auth: `Bearer ${refreshJwt}` })
  t.refreshSessionAccessToken = await user.post(`${s}.refreshSession`)
  t.refreshSessionNoAuth = await anon.post(`${s}.refreshSession`)
  t.deleteSessionAccessToken = await user.post(`${s}.deleteSession`)
  // App passwords and service auth.
  t.createAppPasswordNoName = await user.post(`${s}.createAppPassword`, {})
  t.createAppPasswordBadPrivileged = await user.post(`${s}.createAppPassword`, { name: 'x', privileged: 'yes' })
  t.listAppPasswordsNoAuth = await anon.get(`${s}.listAppPasswords`, {})
  t.getServiceAuthNoAud = await user.get(`${s}.getServiceAuth`, {})
  t.getServiceAuthBadAud = await user.get(`${s}.getServiceAuth`, { aud: 'not a did' })
  t.getServiceAuthProtectedMethod = await user.get(`${s}.getServiceAuth`, { aud: 'did:web:example.com', lxm: 'com.atproto.server.getSession' })
  t.getServiceAuthTooLong = await user.get(`${s}.getServiceAuth`, {
    aud: 'did:web:example.com', lxm: 'com.atproto.repo.createRecord', exp: String(Math.floor(inAnHour.getTime() / 1000)),
  })
  t.getServiceAuthMethodlessLong = await user.get(`${s}.getServiceAuth`, {
    aud: 'did:web:example.com', exp: String(Math.floor(Date.now() / 1000) + 120),
  })
  t.getServiceAuthExpired = await user.get(`${s}.getServiceAuth`, { aud: 'did:web:example.com', exp: '1000' })
  // Account and email flows.
  t.checkAccountStatusNoAuth = await anon.get(`${s}.checkAccountStatus`, {})
  t.createInviteCodeAsUser = await user.post(`${s}.createInviteCode`, { useCount: 1 })
  t.resetPasswordBadToken = await anon.post(`${s}.resetPassword`, { token: 'abcde-fghij', password: 'new-password-1' })
  t.confirmEmailBadToken = await user.post(`${s}.confirmEmail`, { email: 'alice@example.com', token: 'abcde-fghij' })
  t.updateEmailBadEmail = await user.post(`${s}.updateEmail`, { email: 'not-an-email' })
  t.deactivateAccountBadDate = await user.post(`${s}.deactivateAccount`, { deleteAfter: 'soon' })
  t.deleteAccountBadToken = await anon.post(`${s}.deleteAccount`, { did, password: PASSWORD, token: 'abcde-fghij' })
  t.deleteAccountWrongPassword = await anon.post(`${s}.deleteAccount`, { did, password: 'wrong-wrong', token: 'abcde-fghij' })
  t.describeServerPost = await anon.post(`${s}.describeServer`, {})
  // Identity.
  t.resolveHandleNoHandle = await anon.get(`${i}.resolveHandle`, {})
  t.resolveHandleBad = await anon.get(`${i}.resolveHandle`, { handle: 'a b' })
  t.updateHandleBad = await user.post(`${i}.updateHandle`, { handle: 'a b' })
  t.updateHandleTaken = await user.post(`${i}.updateHandle`, { handle: 'alice.test' })
  t.updateHandleNoAuth = await anon.post(`${i}.updateHandle`, { handle: 'carol.test' })
  t.getRecommendedDidCredentialsNoAuth = await anon.get(`${i}.getRecommendedDidCredentials`, {})
  t.submitPlcOperationGarbage = await user.post(`${i}.submitPlcOperation`, { operation: { a: 1 } })
  t.signPlcOperationNoToken = await user.post(`${i}.signPlcOperation`, {})
  t.signPlcOperationBadToken = await user.post(`${i}.signPlcOperation`, { token: 'abcde-fghij' })

  // The account is intact: its password still logs in.
  const login = await anon.post(`${s}.createSession`, { identifier: 'alice.test', password: PASSWORD })
  return { t, stillLogsIn: login.status === 200 }
}

test('malformed server and identity requests get the reference PDS\'s errors', async (t) => {
  const { expected, actual } = await onBoth(t, scenario)
  assertSameOutcomes(expected.t, actual.t, {}, { mayPass: 3 })
  assert.equal(expected.stillLogsIn, true)
  assert.equal(actual.stillLogsIn, true)
})
