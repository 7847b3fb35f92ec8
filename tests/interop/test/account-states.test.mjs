// What a deactivated account, an app password and the wrong kind of token may and may not do,
// sent as raw HTTP to the reference PDS and to berth; each status and XRPC error name must match.
// Deactivation is the state a migrating account passes through on both of its hosts.
import test from 'node:test'
import assert from 'node:assert/strict'
import { AtpAgent } from '@atproto/api'
import { onBoth, rawCaller, assertSameOutcomes } from '../lib/differential.mjs'

const NOW = '2026-11-23T10:00:00.000Z'
const PASSWORD = 'hunter2-hunter2'
const post = (text) => ({ $type: 'app.bsky.feed.post', text, createdAt: NOW })

async function scenario(url) {
  const agent = new AtpAgent({ service: url })
  await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: PASSWORD })
  const did = agent.session.did
  const { accessJwt, refreshJwt } = agent.session
  const { data: created } = await agent.com.atproto.repo.createRecord({ repo: did, collection: 'app.bsky.feed.post', record: post('hi') })
  const rkey = created.uri.split('/').pop()
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4])
  const { data: uploaded } = await agent.com.atproto.repo.uploadBlob(png, { encoding: 'image/png' })
  await agent.com.atproto.repo.createRecord({
    repo: did, collection: 'com.example.thing', rkey: 'withblob', record: { img: uploaded.blob },
  })
  const cid = uploaded.blob.ref.toString()

  const user = rawCaller(url, accessJwt)
  const anon = rawCaller(url, null)
  const r = 'com.atproto.repo'
  const sy = 'com.atproto.sync'
  const sv = 'com.atproto.server'
  const t = {}

  // The wrong kind of token.
  t.createRecordWithRefreshToken = await user.post(`${r}.createRecord`, { repo: did, collection: 'app.bsky.feed.post', record: post('x') }, { auth: `Bearer ${refreshJwt}` })
  // A non-privileged app password: ordinary writes yes, account management no.
  const { data: appPw } = await agent.com.atproto.server.createAppPassword({ name: 'bot' })
  const appAgent = new AtpAgent({ service: url })
  await appAgent.login({ identifier: 'alice.test', password: appPw.password })
  const app = rawCaller(url, appAgent.session.accessJwt)
  t.appPasswordCreateRecord = await app.post(`${r}.createRecord`, { repo: did, collection: 'app.bsky.feed.post', record: post('from a bot') })
  t.appPasswordCreateAppPassword = await app.post(`${sv}.createAppPassword`, { name: 'another' })
  t.appPasswordListAppPasswords = await app.get(`${sv}.listAppPasswords`, {})
  t.appPasswordRevokeAppPassword = await app.post(`${sv}.revokeAppPassword`, { name: 'bot' })
  t.appPasswordDeactivate = await app.post(`${sv}.deactivateAccount`, {})
  t.appPasswordRequestEmailUpdate = await app.post(`${sv}.requestEmailUpdate`)
  t.appPasswordRequestPlcSignature = await app.post('com.atproto.identity.requestPlcOperationSignature')
  t.appPasswordServiceAuthPrivileged = await app.get(`${sv}.getServiceAuth`, { aud: 'did:web:example.com', lxm: 'com.atproto.server.createAccount' })
  t.appPasswordLoginDelete = await anon.post(`${sv}.deleteAccount`, { did, password: appPw.password, token: 'abcde-fghij' })

  // Deactivated.
  await agent.com.atproto.server.deactivateAccount({})
  t.deactivatedCreateRecord = await user.post(`${r}.createRecord`, { repo: did, collection: 'app.bsky.feed.post', record: post('x') })
  t.deactivatedPutRecord = await user.post(`${r}.putRecord`, { repo: did, collection: 'app.bsky.feed.post', rkey, record: post('x') })
  t.deactivatedDeleteRecord = await user.post(`${r}.deleteRecord`, { repo: did, collection: 'app.bsky.feed.post', rkey })
  t.deactivatedApplyWrites = await user.post(`${r}.applyWrites`, {
    repo: did, writes: [{ $type: `${r}.applyWrites#create`, collection: 'app.bsky.feed.post', value: post('x') }],
  })
  t.deactivatedUploadBlob = await user.post(`${r}.uploadBlob`, png, { type: 'image/png' })
  t.deactivatedGetRecord = await anon.get(`${r}.getRecord`, { repo: did, collection: 'app.bsky.feed.post', rkey })
  t.deactivatedListRecords = await anon.get(`${r}.listRecords`, { repo: did, collection: 'app.bsky.feed.post' })
  t.deactivatedDescribeRepo = await anon.get(`${r}.describeRepo`, { repo: did })
  t.deactivatedGetRepo = await anon.get(`${sy}.getRepo`, { did })
  t.deactivatedGetRepoOwn = await user.get(`${sy}.getRepo`, { did })
  t.deactivatedGetLatestCommit = await anon.get(`${sy}.getLatestCommit`, { did })
  t.deactivatedGetRepoStatus = await anon.get(`${sy}.getRepoStatus`, { did })
  t.deactivatedGetBlob = await anon.get(`${sy}.getBlob`, { did, cid })
  t.deactivatedGetBlobOwn = await user.get(`${sy}.getBlob`, { did, cid })
  t.deactivatedListBlobs = await anon.get(`${sy}.listBlobs`, { did })
  t.deactivatedGetRecordSync = await anon.get(`${sy}.getRecord`, { did, collection: 'app.bsky.feed.post', rkey })
  t.deactivatedListMissingBlobs = await user.get(`${r}.listMissingBlobs`, {})
  t.deactivatedCheckStatus = await user.get(`${sv}.checkAccountStatus`, {})
  t.deactivatedGetSession = await user.get(`${sv}.getSession`, {})
  t.deactivatedCreateSession = await anon.post(`${sv}.createSession`, { identifier: 'alice.test', password: PASSWORD })
  t.deactivatedUpdateHandle = await user.post('com.atproto.identity.updateHandle', { handle: 'alice2.test' })
  t.deactivatedResolveHandle = await anon.get('com.atproto.identity.resolveHandle', { handle: 'alice.test' })
  t.deactivatedDeactivateAgain = await user.post(`${sv}.deactivateAccount`, {})
  t.activate = await user.post(`${sv}.activateAccount`)
  t.activateAgain = await user.post(`${sv}.activateAccount`)
  t.activeCreateRecord = await user.post(`${r}.createRecord`, { repo: did, collection: 'app.bsky.feed.post', record: post('back') })

  // A status step's body matters too: what a relay reads.
  const status = await (await fetch(`${url}/xrpc/${sy}.getRepoStatus?did=${did}`)).json()
  return { t, active: status.active }
}

test('deactivated accounts, app passwords and token kinds behave as on the reference PDS', async (t) => {
  const { expected, actual } = await onBoth(t, scenario)
  // Many steps succeed here on purpose (allowed operations), so no minimum of refusals.
  assertSameOutcomes(expected.t, actual.t, {}, { mayPass: Object.keys(expected.t).length })
  assert.equal(expected.active, true)
  assert.equal(actual.active, true)
})
