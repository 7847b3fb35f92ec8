// Child-process entry for the reference PDS (@atproto/pds), configured from PDS_* variables the
// way its own service entry does (readEnv -> envToCfg / envToSecrets). Run it with Node 22:
//   node lib/reference-pds.mjs
// It listens on 127.0.0.1 only: PDS.start() would call app.listen(port), which binds every
// interface and has no host setting, so the listen call is narrowed to loopback here. Prints
// `reference-pds listening <port>` when ready and shuts down cleanly on SIGTERM / SIGINT.
import { PDS, envToCfg, envToSecrets, readEnv } from '@atproto/pds'

const BIND_HOST = '127.0.0.1'

const env = readEnv()
const cfg = envToCfg(env)
const secrets = envToSecrets(env)
const pds = await PDS.create(cfg, secrets)

const listen = pds.app.listen.bind(pds.app)
pds.app.listen = (port, ...rest) => listen(port, BIND_HOST, ...rest)
const server = await pds.start()
process.stdout.write(`reference-pds listening ${server.address().port}\n`)

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  try {
    await pds.destroy()
  } finally {
    process.exit(0)
  }
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
