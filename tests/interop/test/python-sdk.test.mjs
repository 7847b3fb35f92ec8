// The official Python SDK (PyPI `atproto`, pinned in python/requirements.txt, installed into
// tests/interop/.venv by .ci/run) drives a PDS through python/sdk_smoke.py. Against the reference
// PDS it proves the script's expectations; against berth it is the interop check.
import test from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { AtpAgent } from '@atproto/api'
import { startReferencePlc, startReferencePds, startBerth } from '../lib/harness.mjs'

const PYTHON = fileURLToPath(new URL('../.venv/bin/python', import.meta.url))
const SCRIPT = fileURLToPath(new URL('../python/sdk_smoke.py', import.meta.url))
const FIREHOSE = fileURLToPath(new URL('../python/firehose_smoke.py', import.meta.url))

function smoke(pdsUrl) {
  return run(SCRIPT, [pdsUrl])
}

function run(script, args) {
  assert.ok(
    existsSync(PYTHON),
    `no ${PYTHON}: python3 -m venv tests/interop/.venv && tests/interop/.venv/bin/pip install -r tests/interop/python/requirements.txt`,
  )
  return new Promise((resolve) => {
    execFile(PYTHON, [script, ...args], { timeout: 120_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (error.code ?? error.signal) : 0, out: `${stdout}${stderr}` }),
    )
  })
}

test('Python atproto SDK against the reference PDS', async (t) => {
  const plc = await startReferencePlc(t)
  const pds = await startReferencePds(t, { plcUrl: plc.url })
  const { code, out } = await smoke(pds.url)
  assert.equal(code, 0, out)
  assert.match(out, /python sdk smoke: ok/)
})

test('Python atproto SDK against berth', async (t) => {
  const plc = await startReferencePlc(t)
  const pds = await startBerth(t, { plcUrl: plc.url })
  const { code, out } = await smoke(pds.url)
  assert.equal(code, 0, out)
  assert.match(out, /python sdk smoke: ok/)
})

test('Python atproto SDK firehose client reads berth\'s subscribeRepos', async (t) => {
  const plc = await startReferencePlc(t)
  const pds = await startBerth(t, { plcUrl: plc.url })
  const agent = new AtpAgent({ service: pds.url })
  await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'hunter2-hunter2' })
  for (let i = 0; i < 20; i++) await agent.post({ text: `post ${i}`, createdAt: new Date().toISOString() })
  const { data } = await agent.com.atproto.repo.listRecords({ repo: agent.session.did, collection: 'app.bsky.feed.post', limit: 1 })
  await agent.deletePost(data.records[0].uri)
  // Sign-up: identity, account, commit, sync; then 20 creates and a delete.
  const { code, out } = await run(FIREHOSE, [pds.url, '25'])
  assert.equal(code, 0, out)
  assert.match(out, /python firehose smoke: ok 25 events/)
  assert.match(out, /records=20/)
})
