// The shape of successful responses (which keys, of which JSON types, nested), for the methods
// an app or a relay reads, compared between the reference PDS and berth after the same steps.
// Values differ (DIDs, CIDs, times); a missing or extra field, or a field of another type, is
// a wire-format difference a client could trip on.
import test from 'node:test'
import { AtpAgent } from '@atproto/api'
import { randomPng } from '../lib/png.mjs'
import { onBoth, assertSameByKey } from '../lib/differential.mjs'

const NOW = '2026-11-23T10:00:00.000Z'
const PASSWORD = 'hunter2-hunter2'

/** A value's shape: JSON type names, object keys sorted, arrays by their first element. */
function shape(v) {
  if (v === null) return 'null'
  if (Array.isArray(v)) return v.length ? [shape(v[0])] : []
  if (typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, shape(v[k])]))
  }
  return typeof v
}

async function scenario(url) {
  const agent = new AtpAgent({ service: url })
  const created = await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: PASSWORD })
  const did = agent.session.did
  const token = agent.session.accessJwt
  const png = randomPng()
  const req = async (method, nsid, { query, body, type, auth = token } = {}) => {
    const qs = query ? `?${new URLSearchParams(query)}` : ''
    const headers = auth ? { authorization: `Bearer ${auth}` } : {}
    let payload = body
    if (body !== undefined && !(body instanceof Uint8Array)) {
      payload = JSON.stringify(body)
      headers['content-type'] = 'application/json'
    } else if (type) {
      headers['content-type'] = type
    }
    const res = await fetch(`${url}/xrpc/${nsid}${qs}`, { method, headers, body: payload })
    const text = await res.text()
    let parsed = null
    try {
      parsed = JSON.parse(text)
    } catch {}
    return { status: res.status, shape: parsed === null ? (text === '' ? 'empty' : 'not json') : shape(parsed), parsed }
  }
  const get = (nsid, query, opts) => req('GET', nsid, { query, ...opts })
  const post = (nsid, body, opts) => req('POST', nsid, { body, ...opts })
  const r = 'com.atproto.repo'
  const s = {}
  const keep = (name, out) => {
    s[name] = { status: out.status, shape: out.shape }
    return out.parsed
  }

  keep('createAccount', { status: 200, shape: shape(created.data), parsed: created.data })
  keep('describeServer', await get('com.atproto.server.describeServer', {}, { auth: null }))
  const uploaded = keep('uploadBlob', await req('POST', `${r}.uploadBlob`, { body: png, type: 'image/png' }))
  const createdPost = keep('createRecord', await post(`${r}.createRecord`, {
    repo: did, collection: 'app.bsky.feed.post',
    record: { $type: 'app.bsky.feed.post', text: 'hi', createdAt: NOW, embed: { $type: 'app.bsky.embed.images', images: [{ image: uploaded.blob, alt: 'a' }] } },
  }))
  const rkey = createdPost.uri.split('/').pop()
  keep('putRecord', await post(`${r}.putRecord`, {
    repo: did, collection: 'app.bsky.actor.profile', rkey: 'self', record: { $type: 'app.bsky.actor.profile', displayName: 'A' },
  }))
  keep('putRecordNoop', await post(`${r}.putRecord`, {
    repo: did, collection: 'app.bsky.actor.profile', rkey: 'self', record: { $type: 'app.bsky.actor.profile', displayName: 'A' },
  }))
  keep('applyWrites', await post(`${r}.applyWrites`, {
    repo: did,
    writes: [
      { $type: `${r}.applyWrites#create`, collection: 'com.example.thing', rkey: 'a', value: { n: 1 } },
      { $type: `${r}.applyWrites#update`, collection: 'com.example.thing', rkey: 'a', value: { n: 2 } },
      { $type: `${r}.applyWrites#delete`, collection: 'com.example.thing', rkey: 'a' },
    ],
  }))
  keep('deleteRecordNoop', await post(`${r}.deleteRecord`, { repo: did, collection: 'com.example.thing', rkey: 'gone' }))
  keep('getRecord', await get(`${r}.getRecord`, { repo: did, collection: 'app.bsky.feed.post', rkey }, { auth: null }))
  keep('listRecords', await get(`${r}.listRecords`, { repo: did, collection: 'app.bsky.feed.post', limit: '1' }, { auth: null }))
  keep('listRecordsEmpty', await get(`${r}.listRecords`, { repo: did, collection: 'com.example.none' }, { auth: null }))
  keep('describeRepo', await get(`${r}.describeRepo`, { repo: did }, { auth: null }))
  keep('listMissingBlobs', await get(`${r}.listMissingBlobs`, {}))
  keep('getSession', await get('com.atproto.server.getSession', {}))
  keep('checkAccountStatus', await get('com.atproto.server.checkAccountStatus', {}))
  keep('createAppPassword', await post('com.atproto.server.createAppPassword', { name: 'bot' }))
  keep('listAppPasswords', await get('com.atproto.server.listAppPasswords', {}))
  keep('getServiceAuth', await get('com.atproto.server.getServiceAuth', { aud: 'did:web:example.com' }))
  keep('getAccountInviteCodes', await get('com.atproto.server.getAccountInviteCodes', {}))
  keep('createSession', await post('com.atproto.server.createSession', { identifier: 'alice.test', password: PASSWORD }, { auth: null }))
  keep('resolveHandle', await get('com.atproto.identity.resolveHandle', { handle: 'alice.test' }, { auth: null }))
  keep('getRecommendedDidCredentials', await get('com.atproto.identity.getRecommendedDidCredentials', {}))
  keep('getRepoStatus', await get('com.atproto.sync.getRepoStatus', { did }, { auth: null }))
  keep('getLatestCommit', await get('com.atproto.sync.getLatestCommit', { did }, { auth: null }))
  keep('listBlobs', await get('com.atproto.sync.listBlobs', { did }, { auth: null }))
  keep('listRepos', await get('com.atproto.sync.listRepos', {}, { auth: null }))
  // (app.bsky.actor.get/putPreferences: the reference serves them only with an AppView
  // configured, which this harness has not, so there is nothing to compare.)
  keep('deactivateAccount', await post('com.atproto.server.deactivateAccount', {}))
  keep('getRepoStatusDeactivated', await get('com.atproto.sync.getRepoStatus', { did }, { auth: null }))
  keep('listReposDeactivated', await get('com.atproto.sync.listRepos', {}, { auth: null }))
  keep('activateAccount', await post('com.atproto.server.activateAccount'))
  const refresh = agent.session.refreshJwt
  keep('refreshSession', await post('com.atproto.server.refreshSession', undefined, { auth: refresh }))
  return s
}

test('successful responses have the reference PDS\'s shape', async (t) => {
  const { expected, actual } = await onBoth(t, scenario)
  assertSameByKey(expected, actual)
})
