// Load comparison: berth against the reference PDS (@atproto/pds), both started by the interop
// harness with the same PDS_* variables and the same reference PLC, one after the other (so each
// has the machine to itself), all on 127.0.0.1.
//
//   BERTH_BIN=target/release/berth tests/interop/node_modules/.bin/node tests/interop/bench/vs-reference.mjs
//   options: --only reference|berth   --n 500 (records per write phase)   --reads 2000
//            --blobs 20 (1 MiB uploads per blob phase)
//
// The client is raw node:http with keep-alive agents (no @atproto/api) so it is not the
// bottleneck. A method the server does not implement yet (HTTP 501 / MethodNotImplemented)
// shows as "n/a"; any other failure shows as "err" and is printed to stderr.
import http from 'node:http'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { randomBytes } from 'node:crypto'
import { startReferencePlc, startReferencePds, startBerth, BERTH } from '../lib/harness.mjs'

const { values: opts } = parseArgs({
  options: {
    only: { type: 'string' },
    n: { type: 'string', default: '500' },
    reads: { type: 'string', default: '2000' },
    blobs: { type: 'string', default: '20' },
  },
})
const N = Number(opts.n)
const READS = Number(opts.reads)
const BLOBS = Number(opts.blobs)
const WRITERS = 8
const READ_CONCURRENCY = 16
const BLOB_CONCURRENCY = 4
const MiB = 1024 * 1024
const targets = opts.only ? [opts.only] : ['reference', 'berth']
for (const name of targets) {
  if (name !== 'reference' && name !== 'berth') throw new Error(`--only takes reference or berth, not ${name}`)
}
if (targets.includes('berth') && !BERTH) throw new Error('BERTH_BIN must point at a (release) berth binary, or pass --only reference')

// The harness registers clean-ups with a test context; here they run when the bench ends.
const cleanups = []
const ctx = { after: (fn) => cleanups.push(fn) }
async function cleanUp() {
  while (cleanups.length) await cleanups.pop()().catch((e) => console.error('clean-up:', e))
}
let interrupted = false
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    if (interrupted) return
    interrupted = true
    await cleanUp()
    process.exit(130)
  })
}
// A hard bound on the whole run.
const deadline = setTimeout(async () => {
  console.error('bench: time limit (20 min) reached, stopping')
  await cleanUp()
  process.exit(1)
}, 20 * 60_000)
deadline.unref()

class NotImplemented extends Error {}

// ---------------------------------------------------------------------------------------------
// HTTP client

function client(port, maxSockets) {
  const agent = new http.Agent({ keepAlive: true, maxSockets })
  const call = (method, nsid, { query, body, token, type = 'application/json' } = {}) =>
    new Promise((resolve, reject) => {
      const qs = query ? `?${new URLSearchParams(query)}` : ''
      const headers = { host: `localhost:${port}` }
      if (token) headers.authorization = `Bearer ${token}`
      let payload
      if (body !== undefined) {
        payload = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body))
        headers['content-type'] = type
        headers['content-length'] = payload.length
      }
      const req = http.request({ host: '127.0.0.1', port, method, path: `/xrpc/${nsid}${qs}`, agent, headers }, (res) => {
        const chunks = []
        res.on('data', (c) => chunks.push(c))
        res.on('error', reject)
        res.on('end', () => {
          const raw = Buffer.concat(chunks)
          let json
          try {
            json = JSON.parse(raw.toString())
          } catch {}
          if (res.statusCode === 501 || json?.error === 'MethodNotImplemented') {
            reject(new NotImplemented(`${nsid}: not implemented`))
          } else if (res.statusCode !== 200) {
            reject(new Error(`${nsid}: HTTP ${res.statusCode} ${raw.toString().slice(0, 300)}`))
          } else resolve(json)
        })
      })
      req.on('error', reject)
      req.end(payload)
    })
  return { call, close: () => agent.destroy() }
}

/**
 * Runs `total` jobs on `concurrency` workers; returns the elapsed seconds and per-job latencies
 * (ms). The first failure stops the run; if any job saw NotImplemented, that is what is thrown
 * (a server that refuses a method may close the connection mid-upload, failing the others).
 */
async function pool(total, concurrency, job) {
  let next = 0
  let failure
  const latencies = []
  const start = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (next < total && !failure) {
        const i = next++
        const t0 = process.hrtime.bigint()
        try {
          await job(i, worker)
        } catch (e) {
          if (!failure || e instanceof NotImplemented) failure = e
          return
        }
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6)
      }
    }),
  )
  if (failure) throw failure
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, latencies }
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]

function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m[1]) / 1024
}
function peakMiB(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m[1]) / 1024
}

const post = (i) => ({
  $type: 'app.bsky.feed.post',
  text: `bench post ${i} ${'lorem ipsum '.repeat(4)}`,
  createdAt: new Date().toISOString(),
})

// ---------------------------------------------------------------------------------------------
// One server's measurements

async function measure(name, server) {
  const results = {}
  const phase = async (keys, fn) => {
    try {
      Object.assign(results, await fn())
    } catch (e) {
      const mark = e instanceof NotImplemented ? 'n/a' : 'err'
      if (mark === 'err') console.error(`${name}: ${keys.join(', ')}: ${e.stack ?? e}`)
      else console.error(`${name}: ${keys.join(', ')}: ${e.message}`)
      for (const k of keys) results[k] = mark
    }
  }
  const port = Number(new URL(server.url).port)
  await new Promise((r) => setTimeout(r, 1000))
  results.rssIdle = rssMiB(server.pid)

  const api = client(port, 64)
  const accounts = []
  await phase(['seqWrite', 'par8Accounts', 'par8OneAccount', 'getRecord', 'getRecordP50', 'getRecordP99', 'blobSeq', 'blobPar'], async () => {
    for (let i = 0; i < WRITERS; i++) {
      const handle = `bench${i}.test`
      const s = await api.call('POST', 'com.atproto.server.createAccount', {
        body: { handle, email: `${handle}@example.com`, password: 'bench-password-1' },
      })
      accounts.push({ did: s.did, token: s.accessJwt })
    }
    return {}
  })
  if (accounts.length < WRITERS) {
    api.close()
    results.rssAfter = rssMiB(server.pid)
    results.rssPeak = peakMiB(server.pid)
    return results
  }

  const uris = []
  const create = async (acct, i) => {
    const out = await api.call('POST', 'com.atproto.repo.createRecord', {
      token: acct.token,
      body: { repo: acct.did, collection: 'app.bsky.feed.post', record: post(i) },
    })
    uris.push({ did: acct.did, rkey: out.uri.split('/').pop() })
  }

  // (a) sequential creates on one account
  await phase(['seqWrite'], async () => {
    const { seconds } = await pool(N, 1, (i) => create(accounts[0], i))
    return { seqWrite: N / seconds }
  })
  // (b) 8 writers, each on its own account; then 8 writers on one account
  await phase(['par8Accounts'], async () => {
    const { seconds } = await pool(N, WRITERS, (i, w) => create(accounts[w], i))
    return { par8Accounts: N / seconds }
  })
  await phase(['par8OneAccount'], async () => {
    const { seconds } = await pool(N, WRITERS, (i) => create(accounts[1], i))
    return { par8OneAccount: N / seconds }
  })
  // (c) getRecord at c=16 over the records written above
  await phase(['getRecord', 'getRecordP50', 'getRecordP99'], async () => {
    if (uris.length === 0) throw new NotImplemented('no records to read')
    const { seconds, latencies } = await pool(READS, READ_CONCURRENCY, (i) => {
      const { did, rkey } = uris[(i * 7919) % uris.length]
      return api.call('GET', 'com.atproto.repo.getRecord', { query: { repo: did, collection: 'app.bsky.feed.post', rkey } })
    })
    latencies.sort((a, b) => a - b)
    return { getRecord: READS / seconds, getRecordP50: percentile(latencies, 50), getRecordP99: percentile(latencies, 99) }
  })
  // (d) 1 MiB uploadBlob, sequential and c=4 (distinct random content each time)
  const blob = randomBytes(MiB)
  const upload = (i, w) => {
    const body = Buffer.from(blob)
    body.writeUInt32BE(i, 0)
    body.writeUInt32BE(w ?? 0, 4)
    body.write(name, 8)
    return api.call('POST', 'com.atproto.repo.uploadBlob', { token: accounts[(w ?? 0) + 2].token, body, type: 'application/octet-stream' })
  }
  // A small upload first: a server that refuses the method may close the connection before
  // reading a 1 MiB body, and the client would only see EPIPE.
  const probe = () =>
    api.call('POST', 'com.atproto.repo.uploadBlob', { token: accounts[2].token, body: Buffer.from(`probe ${name}`), type: 'text/plain' })
  await phase(['blobSeq'], async () => {
    await probe()
    const { seconds } = await pool(BLOBS, 1, (i) => upload(i, 0))
    return { blobSeq: BLOBS / seconds }
  })
  await phase(['blobPar'], async () => {
    await probe()
    const { seconds } = await pool(BLOBS, BLOB_CONCURRENCY, (i, w) => upload(i + BLOBS, w))
    return { blobPar: BLOBS / seconds }
  })
  api.close()
  await new Promise((r) => setTimeout(r, 1000))
  results.rssAfter = rssMiB(server.pid)
  results.rssPeak = peakMiB(server.pid)
  return results
}

// ---------------------------------------------------------------------------------------------

const ROWS = [
  ['seqWrite', `createRecord sequential (records/s, n=${N})`, 1],
  ['par8Accounts', `createRecord 8 writers / 8 accounts (records/s)`, 1],
  ['par8OneAccount', `createRecord 8 writers / 1 account (records/s)`, 1],
  ['getRecord', `getRecord c=${READ_CONCURRENCY} (req/s, n=${READS})`, 1],
  ['getRecordP50', 'getRecord p50 (ms)', 2],
  ['getRecordP99', 'getRecord p99 (ms)', 2],
  ['blobSeq', `uploadBlob 1 MiB sequential (MiB/s, n=${BLOBS})`, 1],
  ['blobPar', `uploadBlob 1 MiB c=${BLOB_CONCURRENCY} (MiB/s)`, 1],
  ['rssIdle', 'RSS idle after start (MiB)', 1],
  ['rssAfter', 'RSS after load (MiB)', 1],
  ['rssPeak', 'RSS peak, VmHWM (MiB)', 1],
]

function table(results) {
  const fmt = (v, digits) => (typeof v === 'number' ? v.toFixed(digits) : (v ?? '-'))
  const lines = [['metric', 'reference', 'berth', 'berth/reference']]
  for (const [key, label, digits] of ROWS) {
    const ref = results.reference?.[key]
    const ber = results.berth?.[key]
    const ratio = typeof ref === 'number' && typeof ber === 'number' && ref > 0 ? `${(ber / ref).toFixed(2)}x` : '-'
    lines.push([label, fmt(ref, digits), fmt(ber, digits), ratio])
  }
  const widths = lines[0].map((_, c) => Math.max(...lines.map((l) => String(l[c]).length)))
  const row = (l) => `| ${l.map((v, c) => (c === 0 ? String(v).padEnd(widths[c]) : String(v).padStart(widths[c]))).join(' | ')} |`
  return [row(lines[0]), `|${widths.map((w, c) => (c === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...lines.slice(1).map(row)].join('\n')
}

try {
  const plc = await startReferencePlc(ctx)
  // One set of PDS_* variables for both servers (each still gets its own port, data directory
  // and service DID from the harness).
  const env = {
    PDS_JWT_SECRET: randomBytes(16).toString('hex'),
    PDS_ADMIN_PASSWORD: randomBytes(12).toString('hex'),
    PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: randomBytes(32).toString('hex'),
    PDS_BLOB_UPLOAD_LIMIT: String(5 * MiB),
    PDS_INVITE_REQUIRED: 'false',
    PDS_DEV_MODE: 'true',
  }
  const results = {}
  for (const name of targets) {
    const start = name === 'reference' ? startReferencePds : startBerth
    const mark = cleanups.length
    const server = await start(ctx, { plcUrl: plc.url, env })
    console.error(`${name}: ${server.url} (pid ${server.pid})`)
    results[name] = await measure(name, server)
    // Stop this server before the next one starts.
    while (cleanups.length > mark) await cleanups.pop()()
  }
  console.log(`\nberth vs reference PDS (@atproto/pds), ${new Date().toISOString()}, node ${process.version}`)
  console.log(table(results))
  console.log('berth/reference: above 1 is better for rates, below 1 is better for latency and RSS')
} finally {
  await cleanUp()
  clearTimeout(deadline)
}
