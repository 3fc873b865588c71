// A session store: one value per session token, in a last-writer-wins keyspace, read and
// written at LOCAL_QUORUM so each datacenter answers on its own.
//
// Run `meridian dev`, then `node examples/node/sessions.mjs`.
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { connect } = require('../../sdk-node/meridian.js')

async function waitFor(what, check, deadlineMs = 60_000) {
  const end = Date.now() + deadlineMs
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`sessions example: ${what} did not happen within ${deadlineMs / 1000} s`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const dc1 = await connect(process.env.MERIDIAN_DC1 ?? 'http://127.0.0.11:7070', { localDc: 'dc1' })
const dc2 = await connect(process.env.MERIDIAN_DC2 ?? 'http://127.0.0.21:7070', { localDc: 'dc2' })
await dc1.createKeyspace('sessions', { kind: 'lww', readConsistency: 'LOCAL_QUORUM', writeConsistency: 'LOCAL_QUORUM' })
const sessions = dc1.keyspace('sessions')
const token = randomUUID()
const now = Date.now() / 1000
await sessions.put(token, JSON.stringify({ user: 'ada', expires: now + 3600 }))
// An lww keyspace never has siblings: the later write wins.
await sessions.put(token, JSON.stringify({ user: 'ada', expires: now + 7200, cart: 3 }))
const session = (await sessions.get(token)).value
console.log('dc1 session:', JSON.parse(session))
if (JSON.parse(session).cart !== 3) throw new Error('sessions example: the later write did not win')

const remote = dc2.keyspace('sessions')
await waitFor('the session reaching dc2', async () => String((await remote.get(token)).siblings) === String(session))
console.log('dc2 reads the same session: ok')

await sessions.delete(token)
await waitFor('the logout reaching dc2', async () => !(await remote.get(token)).found)
console.log('logged out in dc1, gone in dc2: ok')
await dc1.close()
await dc2.close()
