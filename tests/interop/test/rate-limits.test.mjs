// Rate limits as a client sees them, with PDS_RATE_LIMITS_ENABLED=true on both servers: logins
// to one account until refused, and the RateLimit-* headers along the way, on the reference PDS
// and on berth.
import test from 'node:test'
import assert from 'node:assert/strict'
import { AtpAgent } from '@atproto/api'
import { onBoth } from '../lib/differential.mjs'

const PASSWORD = 'hunter2-hunter2'

async function scenario(url) {
  const agent = new AtpAgent({ service: url })
  await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: PASSWORD })
  const steps = []
  for (let i = 0; i < 32; i++) {
    const res = await fetch(`${url}/xrpc/com.atproto.server.createSession`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ identifier: 'alice.test', password: i % 2 ? 'wrong-wrong' : PASSWORD }),
    })
    const body = await res.json().catch(() => null)
    steps.push({
      status: res.status,
      error: body?.error ?? null,
      limit: res.headers.get('ratelimit-limit'),
      remaining: res.headers.get('ratelimit-remaining'),
      policy: res.headers.get('ratelimit-policy'),
      hasReset: res.headers.has('ratelimit-reset'),
    })
  }
  return steps
}

test('login rate limits answer as the reference PDS', async (t) => {
  const { expected, actual } = await onBoth(t, scenario, { env: { PDS_RATE_LIMITS_ENABLED: 'true' } })
  assert.ok(expected.some((s) => s.status === 429), 'the reference never limited')
  const diffs = expected
    .map((e, i) => [i, e, actual[i]])
    .filter(([, e, a]) => JSON.stringify(a) !== JSON.stringify(e))
    .map(([i, e, a]) => `login ${i}: berth ${JSON.stringify(a)}, reference ${JSON.stringify(e)}`)
  assert.deepEqual(diffs, [])
})
