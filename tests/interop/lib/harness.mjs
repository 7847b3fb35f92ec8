// Starts the pieces an interop test needs, all on 127.0.0.1, and stops them afterwards:
// the reference PLC directory (@did-plc/server, in-memory mock database), `berth serve` and the
// reference PDS (@atproto/pds), both configured with PDS_* variables only, as an operator would.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { PlcServer, MockDatabase } from '@did-plc/server'

export const BERTH = process.env.BERTH_BIN
const REFERENCE_ENTRY = fileURLToPath(new URL('./reference-pds.mjs', import.meta.url))

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
    srv.on('error', reject)
  })
}

/** The reference PLC directory; `url` uses the host name `localhost`, as the reference PDS wants. */
export async function startReferencePlc(t) {
  const plc = PlcServer.create({ db: new MockDatabase() })
  // Listen on loopback only (PlcServer.start would bind every interface).
  const server = await new Promise((resolve) => {
    const s = plc.app.listen(0, '127.0.0.1', () => resolve(s))
  })
  t.after(() => new Promise((resolve) => server.close(resolve)))
  return { url: `http://localhost:${server.address().port}` }
}

async function waitForHealth(name, url, child, log) {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited early:\n${log()}`)
    try {
      const res = await fetch(`${url}/xrpc/_health`)
      if (res.ok) return
    } catch {}
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`${name} did not become healthy:\n${log()}`)
}

/**
 * The PDS_* variables both servers are started with: loopback host name, a fresh data directory
 * with a disk blobstore, dev mode, no invites, random secrets, the given PLC and a service DID of
 * its own. `env` overrides (or, with `undefined`, removes) any of them, so one test can hand the
 * same variables to berth and to the reference.
 */
export function pdsEnv({ port, dir, plcUrl, env = {} }) {
  const vars = {
    PDS_HOSTNAME: 'localhost',
    PDS_PORT: String(port),
    PDS_DEV_MODE: 'true',
    PDS_DATA_DIRECTORY: dir,
    PDS_BLOBSTORE_DISK_LOCATION: join(dir, 'blocks'),
    PDS_JWT_SECRET: randomBytes(16).toString('hex'),
    PDS_ADMIN_PASSWORD: 'admin-pass',
    PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: randomBytes(32).toString('hex'),
    PDS_DID_PLC_URL: plcUrl,
    PDS_SERVICE_DID: `did:web:localhost%3A${port}`,
    PDS_INVITE_REQUIRED: 'false',
    ...env,
  }
  for (const [k, v] of Object.entries(vars)) if (v === undefined) delete vars[k]
  return vars
}

// Spawns a server, collects its output, waits for /xrpc/_health, and stops it (SIGTERM, then
// SIGKILL after a grace period) and removes its data directory when the test ends.
async function runServer(t, { name, command, args, vars, extraEnv = {}, dir, port }) {
  const child = spawn(command, args, {
    env: { PATH: process.env.PATH, ...extraEnv, ...vars },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  const exited = new Promise((r) => child.on('exit', r))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  t.after(stop)
  const url = `http://localhost:${port}`
  await waitForHealth(name, url, child, () => output)
  return { url, port, dir, dataDir: dir, vars, env: vars, pid: child.pid, child, stop, log: () => output }
}

/** `berth serve` on 127.0.0.1 with a fresh data directory. */
export async function startBerth(t, { plcUrl, env = {} }) {
  const dir = mkdtempSync(join(tmpdir(), 'berth-pds-'))
  const port = await freePort()
  const vars = pdsEnv({ port, dir, plcUrl, env })
  return runServer(t, { name: 'berth', command: BERTH, args: ['serve', '--bind', '127.0.0.1'], vars, dir, port })
}

/**
 * The reference PDS (@atproto/pds, `lib/reference-pds.mjs`) in a child process on the same Node
 * as the tests, bound to 127.0.0.1, with a fresh data directory and disk blobstore. No AppView
 * is configured (PDS_BSKY_APP_VIEW_URL unset), so app.bsky reads that it would proxy fail, while
 * repo, blob, identity and sync methods are served locally. Set LOG_ENABLED=true in the test's
 * own environment to see its request log.
 */
export async function startReferencePds(t, { plcUrl, env = {} }) {
  const dir = mkdtempSync(join(tmpdir(), 'reference-pds-'))
  const port = await freePort()
  const vars = pdsEnv({ port, dir, plcUrl, env })
  return runServer(t, {
    name: 'reference PDS',
    command: process.execPath,
    args: [REFERENCE_ENTRY],
    vars,
    extraEnv: { LOG_ENABLED: process.env.LOG_ENABLED ?? 'false' },
    dir,
    port,
  })
}
