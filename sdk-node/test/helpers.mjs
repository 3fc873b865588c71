// Real `meridian` processes for the tests: one node on free ports, or a two-datacenter
// `meridian dev` cluster, each awaited by its readiness line with a generous deadline and
// stopped (SIGTERM, then SIGKILL) at the end.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir, homedir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

const START_DEADLINE_MS = 90_000

export function meridianBin() {
  if (process.env.MERIDIAN_BIN) return process.env.MERIDIAN_BIN
  const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache/meridian-target')
  const path = join(target, 'debug', 'meridian')
  if (!existsSync(path)) throw new Error(`no meridian binary at ${path}: build it or set MERIDIAN_BIN`)
  return path
}

function start(args, ready) {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-node-'))
  const child = spawn(meridianBin(), args(dir), {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, RUST_LOG: 'error' },
  })
  const lines = []
  const rl = createInterface({ input: child.stdout })
  const started = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready within ${START_DEADLINE_MS} ms: ${lines}`)), START_DEADLINE_MS)
    rl.on('line', (line) => {
      lines.push(line)
      if (ready(line)) {
        clearTimeout(timer)
        resolve(lines)
      }
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`meridian exited with ${code} before it was ready: ${lines}`))
    })
  })
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000)
      await exited
      clearTimeout(killer)
    }
    rl.close()
    rmSync(dir, { recursive: true, force: true })
  }
  return { started, stop }
}

function field(line, name) {
  const word = line.split(/\s+/).find((w) => w.startsWith(`${name}=`))
  return word.slice(name.length + 1)
}

/** One node; resolves to { endpoint, stop }. */
export async function startNode() {
  const p = start(
    (dir) => ['server', '--data-dir', join(dir, 'data'), '--grpc-addr', '127.0.0.1:0', '--http-addr', '127.0.0.1:0', '--gossip-addr', '127.0.0.1:0'],
    (line) => line.startsWith('MERIDIAN_READY'),
  )
  const lines = await p.started.catch(async (e) => { await p.stop(); throw e })
  const ready = lines.find((l) => l.startsWith('MERIDIAN_READY'))
  return { endpoint: field(ready, 'grpc'), stop: p.stop }
}

async function portFree(ip, port) {
  return new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, ip, () => s.close(() => resolve(true)))
  })
}

/** A port free for `meridian dev --nodes-per-dc 1` on every address it binds. */
async function freeDevPort() {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 40000)
    let ok = true
    for (const ip of ['127.0.0.11', '127.0.0.21']) {
      for (const p of [port, port + 10, port + 20]) ok = ok && (await portFree(ip, p))
    }
    if (ok) return port
  }
  throw new Error('no free port for the dev cluster')
}

/** `meridian dev` with one node in each of dc1 and dc2; resolves to { dc1, dc2, stop }. */
export async function startDev() {
  const port = await freeDevPort()
  const p = start(
    (dir) => ['dev', '--data-dir', join(dir, 'dev'), '--port', String(port), '--nodes-per-dc', '1'],
    (line) => line.includes('Ctrl-C stops'),
  )
  const lines = await p.started.catch(async (e) => { await p.stop(); throw e })
  const endpoints = {}
  for (const line of lines) {
    const words = line.split(/\s+/)
    if (words.length >= 4 && (words[1] === 'dc1' || words[1] === 'dc2')) endpoints[words[1]] = words[3]
  }
  return { ...endpoints, stop: p.stop }
}

/** Polls `check` until it resolves truthy; rejects naming `what` at the deadline. */
export async function eventually(check, what, deadlineMs = 60_000) {
  const end = Date.now() + deadlineMs
  let last
  while (Date.now() < end) {
    last = await check()
    if (last) return last
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`${what}: not within ${deadlineMs} ms (last: ${last})`)
}
