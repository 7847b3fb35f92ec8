// Load comparison: berth against the reference PDS (@atproto/pds), both started by the interop
// harness with the same PDS_* variables and the same reference PLC, one after the other (so each
// has the machine to itself), all on 127.0.0.1.
//
//   BERTH_BIN=target/release/berth tests/interop/node_modules/.bin/node tests/interop/bench/vs-reference.mjs
//   options: --only reference|berth   --seconds 10 (per wrk phase)   --client wrk|node
//            --rounds 3 (each server measured 3 times, alternately; the table shows medians)
//            node client only: --n 500 (records per write phase) --reads 2000 --blobs 20
//
// The load comes from wrk (Debian package `wrk`; `--client node` falls back to node:http), a
// second process written in C: a Node client tops out near 8,000 requests/s here, which hid
// most of berth's speed. Each rate phase runs for --seconds; node:http only creates the
// accounts and the records to read. A method the server does not implement (HTTP 501 /
// MethodNotImplemented) shows as "n/a"; any other failure shows as "err", printed to stderr.
//
// This machine's speed drifts by a third within minutes, and a single run of each server can
// land on different sides of a drift. With --rounds N the servers take turns (the order flips
// every round), each round's table is printed to stderr, and the final table holds the median
// of each metric with the ratio of the medians.
import http from 'node:http'
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { randomBytes } from 'node:crypto'
import { startReferencePlc, startReferencePds, startBerth, BERTH } from '../lib/harness.mjs'

const { values: opts } = parseArgs({
  options: {
    only: { type: 'string' },
    n: { type: 'string', default: '500' },
    reads: { type: 'string', default: '2000' },
    blobs: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '10' },
    client: { type: 'string' },
    rounds: { type: 'string', default: '1' },
  },
})
const hasWrk = spawnSync('wrk', ['--version']).error === undefined
const CLIENT = opts.client ?? (hasWrk ? 'wrk' : 'node')
if (CLIENT === 'wrk' && !hasWrk) throw new Error('wrk is not installed (apt-get install wrk), or pass --client node')
if (CLIENT !== 'wrk' && CLIENT !== 'node') throw new Error(`--client takes wrk or node, not ${CLIENT}`)
const SECONDS = Number(opts.seconds)
const ROUNDS = Number(opts.rounds)
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`--rounds takes a positive integer, not ${opts.rounds}`)
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
// A hard bound on the whole run: 20 minutes a round.
const deadline = setTimeout(async () => {
  console.error(`bench: time limit (${20 * ROUNDS} min) reached, stopping`)
  await cleanUp()
  process.exit(1)
}, 20 * ROUNDS * 60_000)
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

// ---------------------------------------------------------------------------------------------
// wrk

const wrkDir = mkdtempSync(join(tmpdir(), 'berth-bench-wrk-'))
cleanups.push(async () => rmSync(wrkDir, { recursive: true, force: true }))
const luaStr = (v) => JSON.stringify(String(v)) // a JSON string literal is a valid Lua one here

/**
 * Runs wrk for SECONDS against `port` with `threads` threads of one connection each (so
 * thread i is writer i), or `connections` over one thread. `lua` defines `request()`; every
 * thread sees its number as `idx`. Returns requests/s and p50/p99 latency in ms; any non-2xx
 * response fails the phase (HTTP 501 as NotImplemented).
 */
function wrk(port, name, lua, { threads = 1, connections = threads } = {}) {
  const script = join(wrkDir, `${name}.lua`)
  writeFileSync(
    script,
    `local n = 0\nfunction setup(thread) thread:set("idx", n); n = n + 1 end\n${lua}\n` +
      // wrk prints non-2xx counts itself; the first bad status is worth seeing too.
      `local shown = false\nfunction response(status, headers, body)\n` +
      `  if status >= 300 and not shown then shown = true; io.stderr:write("HTTP " .. status .. " " .. string.sub(body, 1, 300) .. "\\n") end\nend\n`,
  )
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${SECONDS}s`, '--latency', '-s', script, `http://127.0.0.1:${port}/`]
  const run = spawnSync('wrk', args, { encoding: 'utf8', timeout: (SECONDS + 60) * 1000 })
  if (run.status !== 0) throw new Error(`wrk ${name}: exit ${run.status}: ${run.stderr}`)
  const out = run.stdout
  const bad = /Non-2xx or 3xx responses: (\d+)/.exec(out)
  if (bad) {
    if (/HTTP 501|MethodNotImplemented/.test(run.stderr)) throw new NotImplemented(`${name}: not implemented`)
    throw new Error(`${name}: ${bad[1]} non-2xx responses: ${run.stderr.trim().split('\n')[0]}`)
  }
  const sockErr = /Socket errors: (.*)/.exec(out)
  if (sockErr && /(connect|read|write) [1-9]/.test(sockErr[1])) throw new Error(`${name}: socket errors: ${sockErr[1]}`)
  const ms = (label) => {
    const m = new RegExp(`^\\s+${label}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(out)
    if (!m) return undefined
    return Number(m[1]) * { us: 1e-3, ms: 1, s: 1e3 }[m[2]]
  }
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(out)
  if (!rate) throw new Error(`${name}: no rate in wrk output:\n${out}`)
  return { rate: Number(rate[1]), p50: ms('50'), p99: ms('99') }
}

/** Lua for createRecord: thread `idx` writes to accounts[idx % #accounts]. */
function createRecordLua(accts) {
  const list = accts.map((a) => `{did=${luaStr(a.did)}, token=${luaStr(a.token)}}`).join(', ')
  const record = `{"$type":"app.bsky.feed.post","text":"bench post lorem ipsum lorem ipsum lorem ipsum lorem ipsum","createdAt":"2026-11-23T12:00:00.000Z"}`
  return `local accounts = {${list}}
local req
function init(args)
  local a = accounts[(idx % #accounts) + 1]
  local body = '{"repo":"' .. a.did .. '","collection":"app.bsky.feed.post","record":' .. ${luaStr(record)} .. '}'
  req = wrk.format("POST", "/xrpc/com.atproto.repo.createRecord", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. a.token}, body)
end
function request() return req end`
}

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

/** The rate phases with wrk: each runs for SECONDS. */
async function measureWithWrk(name, port, api, accounts, results, phase) {
  await phase(['seqWrite'], async () => ({ seqWrite: wrk(port, `${name}-seq`, createRecordLua([accounts[0]])).rate }))
  await phase(['par8Accounts'], async () => ({
    par8Accounts: wrk(port, `${name}-par8`, createRecordLua(accounts), { threads: WRITERS }).rate,
  }))
  await phase(['par8OneAccount'], async () => ({
    par8OneAccount: wrk(port, `${name}-par8one`, createRecordLua([accounts[1]]), { threads: WRITERS }).rate,
  }))
  await phase(['getRecord', 'getRecordP50', 'getRecordP99'], async () => {
    const paths = []
    for (const acct of accounts.slice(0, 4)) {
      const list = await api.call('GET', 'com.atproto.repo.listRecords', {
        query: { repo: acct.did, collection: 'app.bsky.feed.post', limit: 100 },
      })
      for (const r of list.records) {
        const [, , did, collection, rkey] = r.uri.split('/')
        paths.push(`/xrpc/com.atproto.repo.getRecord?repo=${did}&collection=${collection}&rkey=${rkey}`)
      }
    }
    if (paths.length === 0) throw new NotImplemented('no records to read')
    // Requests are formatted once per thread: formatting each one in Lua made one wrk
    // thread the bottleneck near 21,000 requests/s. Two threads, as the machine has two cores.
    const lua = `local paths = {${paths.map(luaStr).join(', ')}}
local reqs = {}
local i = 0
function init(args) for k, p in ipairs(paths) do reqs[k] = wrk.format("GET", p) end; i = idx * 7 end
function request() i = i + 1; return reqs[(i % #reqs) + 1] end`
    const r = wrk(port, `${name}-get`, lua, { threads: 2, connections: READ_CONCURRENCY })
    return { getRecord: r.rate, getRecordP50: r.p50, getRecordP99: r.p99 }
  })
  // 1 MiB uploads (the same bytes each time, for both servers): requests/s = MiB/s.
  const blobFile = join(wrkDir, 'blob.bin')
  writeFileSync(blobFile, randomBytes(MiB))
  const blobLua = (acct) => `local req
function init(args)
  local f = assert(io.open(${luaStr(blobFile)}, "rb"))
  local body = f:read("*a")
  f:close()
  req = wrk.format("POST", "/xrpc/com.atproto.repo.uploadBlob", {["Content-Type"] = "application/octet-stream", ["Authorization"] = "Bearer " .. ${luaStr(acct.token)}}, body)
end
function request() return req end`
  await phase(['blobSeq'], async () => ({ blobSeq: wrk(port, `${name}-blob1`, blobLua(accounts[2])).rate }))
  await phase(['blobPar'], async () => ({
    blobPar: wrk(port, `${name}-blob4`, blobLua(accounts[3]), { threads: 1, connections: BLOB_CONCURRENCY }).rate,
  }))
}

async function measure(name, server) {
  const results = {}
  const phase = async (keys, fn) => {
    // Each phase starts with no dirty pages left by the one before (or by the other
    // server's files, deleted just before): write-back would otherwise land on this phase.
    spawnSync('sync')
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

  if (CLIENT === 'wrk') {
    await measureWithWrk(name, port, api, accounts, results, phase)
  } else {
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
  }
  api.close()
  await new Promise((r) => setTimeout(r, 1000))
  results.rssAfter = rssMiB(server.pid)
  results.rssPeak = peakMiB(server.pid)
  return results
}

// ---------------------------------------------------------------------------------------------

// The fourth field is the ratio to the reference that issue #5 sets as the target.
const ROWS = [
  ['seqWrite', `createRecord sequential (records/s, ${CLIENT === 'wrk' ? `${SECONDS} s` : `n=${N}`})`, 1, { atLeast: 50 }],
  ['par8Accounts', `createRecord 8 writers / 8 accounts (records/s)`, 1, { atLeast: 50 }],
  ['par8OneAccount', `createRecord 8 writers / 1 account (records/s)`, 1],
  ['getRecord', `getRecord c=${READ_CONCURRENCY} (req/s${CLIENT === 'wrk' ? '' : `, n=${READS}`})`, 1, { atLeast: 50 }],
  ['getRecordP50', 'getRecord p50 (ms)', 2],
  ['getRecordP99', 'getRecord p99 (ms)', 2],
  ['blobSeq', `uploadBlob 1 MiB sequential (MiB/s${CLIENT === 'wrk' ? '' : `, n=${BLOBS}`})`, 1, { atLeast: 5 }],
  ['blobPar', `uploadBlob 1 MiB c=${BLOB_CONCURRENCY} (MiB/s)`, 1, { atLeast: 5 }],
  ['rssIdle', 'RSS idle after start (MiB)', 1, { atMost: 0.1 }],
  ['rssAfter', 'RSS after load (MiB)', 1],
  ['rssPeak', 'RSS peak, VmHWM (MiB)', 1],
]

/** Per server and metric, the median over the rounds; a round that measured no number (n/a,
 * err) marks the metric with its mark rather than being left out. */
function medians(rounds) {
  const out = {}
  for (const name of targets) {
    out[name] = {}
    for (const [key] of ROWS) {
      const values = rounds.map((r) => r[name]?.[key])
      const unmeasured = values.findIndex((v) => typeof v !== 'number')
      if (unmeasured >= 0) {
        out[name][key] = values[unmeasured]
        continue
      }
      const numbers = [...values].sort((a, b) => a - b)
      const mid = numbers.length >> 1
      out[name][key] = numbers.length % 2 ? numbers[mid] : (numbers[mid - 1] + numbers[mid]) / 2
    }
  }
  return out
}

function table(results) {
  const fmt = (v, digits) => (typeof v === 'number' ? v.toFixed(digits) : (v ?? '-'))
  const lines = [['metric', 'reference', 'berth', 'berth/reference', 'target']]
  for (const [key, label, digits, target] of ROWS) {
    const ref = results.reference?.[key]
    const ber = results.berth?.[key]
    const measured = typeof ref === 'number' && typeof ber === 'number' && ref > 0
    const ratio = measured ? ber / ref : undefined
    let verdict = '-'
    if (target?.atLeast !== undefined) verdict = `>= ${target.atLeast}x`
    if (target?.atMost !== undefined) verdict = `<= ${target.atMost}x`
    if (target && measured) {
      const met = target.atLeast !== undefined ? ratio >= target.atLeast : ratio <= target.atMost
      verdict += met ? ' met' : ' MISSED'
    }
    lines.push([label, fmt(ref, digits), fmt(ber, digits), measured ? `${ratio.toFixed(2)}x` : '-', verdict])
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
  const rounds = []
  for (let round = 0; round < ROUNDS; round++) {
    const results = {}
    for (const name of round % 2 === 0 ? targets : [...targets].reverse()) {
      const start = name === 'reference' ? startReferencePds : startBerth
      const mark = cleanups.length
      const server = await start(ctx, { plcUrl: plc.url, env })
      console.error(`${name}: ${server.url} (pid ${server.pid})`)
      results[name] = await measure(name, server)
      // Stop this server before the next one starts.
      while (cleanups.length > mark) await cleanups.pop()()
    }
    rounds.push(results)
    if (ROUNDS > 1) console.error(`\nround ${round + 1} of ${ROUNDS}\n${table(results)}\n`)
  }
  const results = ROUNDS === 1 ? rounds[0] : medians(rounds)
  console.log(`\nberth vs reference PDS (@atproto/pds), ${new Date().toISOString()}, node ${process.version}, load from ${CLIENT === 'wrk' ? spawnSync('wrk', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0].split(' [')[0] : 'node:http'}${ROUNDS > 1 ? `, median of ${ROUNDS} rounds` : ''}`)
  console.log(table(results))
  console.log('berth/reference: above 1 is better for rates, below 1 is better for latency and RSS')
} finally {
  await cleanUp()
  clearTimeout(deadline)
}
