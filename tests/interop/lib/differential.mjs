// Differential tests: the same scenario run against the reference PDS and against berth, and
// the two transcripts compared. Raw XRPC calls record what a buggy or hostile client sends,
// which the official client never would, as status and XRPC error name only (messages are free
// text and differ).
import assert from 'node:assert/strict'
import { startReferencePlc, startReferencePds, startBerth } from './harness.mjs'

/**
 * Starts the reference PLC, the reference PDS and berth (both with `env` on top of the shared
 * PDS_* defaults) and runs `scenario(url, server)` on the reference, then on berth. Returns
 * `{ expected, actual }`: the reference's transcript and berth's.
 */
export async function onBoth(t, scenario, { env = {} } = {}) {
  const plc = await startReferencePlc(t)
  const reference = await startReferencePds(t, { plcUrl: plc.url, env })
  const berth = await startBerth(t, { plcUrl: plc.url, env })
  const expected = await scenario(reference.url, reference)
  const actual = await scenario(berth.url, berth)
  return { expected, actual }
}

/** Asserts that two transcripts (objects keyed by step) are equal, naming every differing step. */
export function assertSameByKey(expected, actual) {
  const diffs = Object.keys(expected)
    .filter((k) => JSON.stringify(actual[k]) !== JSON.stringify(expected[k]))
    .map((k) => `${k}:\n  berth     ${JSON.stringify(actual[k])}\n  reference ${JSON.stringify(expected[k])}`)
  assert.deepEqual(diffs, [])
  assert.deepEqual(Object.keys(actual), Object.keys(expected))
}

/**
 * A caller bound to `url` and a default bearer `token`. `call(method, nsid, { query, body,
 * type, auth })` returns `{ status, error }`: `error` is null when the response is not an XRPC
 * error; with `detail`, a successful write's `validationStatus` (or applyWrites' result types
 * and verdicts) and an upload's blob `mimeType` and `size` are added. A non-string, non-bytes `body` is sent as JSON; `auth: null` sends no Authorization.
 * Set SHOW_MESSAGES=1 to print every response's message.
 */
export function rawCaller(url, token, { detail = false } = {}) {
  const call = async (method, nsid, { query, body, type, auth = token && `Bearer ${token}` } = {}) => {
    const qs = query ? `?${new URLSearchParams(query)}` : ''
    const headers = {}
    if (auth) headers.authorization = auth
    if (type) headers['content-type'] = type
    let payload = body
    if (body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) {
      payload = JSON.stringify(body)
      headers['content-type'] ??= 'application/json'
    }
    const res = await fetch(`${url}/xrpc/${nsid}${qs}`, { method, headers, body: payload })
    const text = await res.text()
    let error = null
    let message
    let parsed
    try {
      parsed = JSON.parse(text)
      ;({ error = null, message } = parsed)
    } catch {}
    if (process.env.SHOW_MESSAGES) console.log(nsid, res.status, error, message ?? text.slice(0, 120))
    const outcome = { status: res.status, error }
    // With `detail`, a write's validation verdicts too (per result for applyWrites).
    if (detail && parsed && res.status === 200) {
      if (parsed.validationStatus) outcome.validationStatus = parsed.validationStatus
      if (Array.isArray(parsed.results)) outcome.results = parsed.results.map((r) => [r.$type, r.validationStatus ?? null])
      if (parsed.blob) outcome.blob = { mimeType: parsed.blob.mimeType, size: parsed.blob.size }
    }
    return outcome
  }
  return {
    call,
    get: (nsid, query, opts = {}) => call('GET', nsid, { query, ...opts }),
    post: (nsid, body, opts = {}) => call('POST', nsid, { body, ...opts }),
  }
}

/**
 * Asserts that berth's outcome equals the reference's at every step, except the steps in
 * `deliberate`, where each side must give the outcome listed for it. Also asserts that most
 * steps were refused (a scenario whose requests all succeeded would prove nothing).
 */
export function assertSameOutcomes(expected, actual, deliberate = {}, { mayPass = 0 } = {}) {
  const refused = Object.values(expected).filter((o) => o.status >= 400).length
  assert.ok(refused >= Object.keys(expected).length - mayPass, `the reference refused only ${refused} requests`)
  const diffs = []
  for (const step of Object.keys(expected)) {
    const [want, got] = deliberate[step]
      ? [deliberate[step], { reference: expected[step], berth: actual[step] }]
      : [expected[step], actual[step]]
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      diffs.push(`step ${step}: berth ${JSON.stringify(actual[step])}, reference ${JSON.stringify(expected[step])}`)
    }
  }
  assert.deepEqual(diffs, [])
  assert.deepEqual(Object.keys(actual), Object.keys(expected))
}
