// Starts the pieces an interop test needs, all on 127.0.0.1, and stops them afterwards:
// the reference PLC directory (@did-plc/server, in-memory mock database) and `berth serve`
// configured with PDS_* variables only, as an operator would.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { PlcServer, MockDatabase } from '@did-plc/server'

export const BERTH = process.env.BERTH_BIN

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

async function waitForHealth(url, child, log) {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`berth exited early:\n${log()}`)
    try {
      const res = await fetch(`${url}/xrpc/_health`)
      if (res.ok) return
    } catch {}
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`berth did not become healthy:\n${log()}`)
}

/** `berth serve` on 127.0.0.1 with a fresh data directory. */
export async function startBerth(t, { plcUrl, env = {} }) {
  const dir = mkdtempSync(join(tmpdir(), 'berth-pds-'))
  const port = await freePort()
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
  const child = spawn(BERTH, ['serve', '--bind', '127.0.0.1'], {
    env: { PATH: process.env.PATH, ...vars },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  t.after(async () => {
    child.kill('SIGTERM')
    await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)))
    rmSync(dir, { recursive: true, force: true })
  })
  const url = `http://localhost:${port}`
  await waitForHealth(url, child, () => output)
  return { url, dir, vars, log: () => output }
}
