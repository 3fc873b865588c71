// Real `meridian` processes for the tests: one node on free ports, a two-datacenter
// `meridian dev` cluster, or two datacenters linked through the tests' WAN proxy (which a
// test can cut), each awaited by its readiness line with a generous deadline and
// stopped (SIGTERM, then SIGKILL) at the end.
import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir, homedir } from 'node:os'
import { dirname, join } from 'node:path'
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

/** `server/node/examples/wan_proxy.rs` beside the binary: one proxy per IP, steered on stdin. */
async function startProxy(ips) {
  const bin = process.env.MERIDIAN_WAN_PROXY ?? join(dirname(meridianBin()), 'examples', 'wan_proxy')
  if (!existsSync(bin)) throw new Error(`no WAN proxy at ${bin}: cargo build -p meridian --example wan_proxy`)
  const child = spawn(bin, ips, { stdio: ['pipe', 'pipe', 'ignore'] })
  const lines = []
  const waiters = []
  createInterface({ input: child.stdout }).on('line', (l) => {
    lines.push(l)
    for (const w of waiters.splice(0)) w()
  })
  const waitFor = async (pred, what) => {
    const end = Date.now() + START_DEADLINE_MS
    for (;;) {
      const found = lines.find(pred)
      if (found) return found
      if (Date.now() > end) throw new Error(`${what}: not within ${START_DEADLINE_MS} ms (${lines})`)
      await new Promise((r) => { waiters.push(r); setTimeout(r, 200) })
    }
  }
  const addrs = {}
  for (let i = 1; i <= ips.length; i++) {
    addrs[i] = (await waitFor((l) => l.startsWith(`proxy ${i} `), 'a proxy start')).split(' ')[2]
  }
  const command = async (line) => {
    child.stdin.write(`${line}\n`)
    await waitFor((l) => l === `ok ${line}`, `the proxy taking ${line}`)
    lines.splice(0, lines.length)
  }
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.stdin.end()
      await exited
    }
  }
  return { addrs, command, stop }
}

/** Whether `meridian admin members` at `endpoint` shows `count` nodes up with the layout settled. */
async function membersReady(endpoint, count) {
  const out = await new Promise((resolve) => {
    execFile(meridianBin(), ['admin', 'members', '--endpoint', endpoint], (err, stdout) => resolve(err ? '' : stdout))
  })
  const rows = out.split('\n').filter((l) => l.includes(' up ')).map((l) => l.trim().split(/\s+/))
  return rows.length === count && rows.every((w) => Number(w[5]) > 0) && !out.includes('while data moves')
}

/**
 * A node in dc1 and one in dc2, each reached from the other DC through the WAN proxy;
 * resolves to { dc1, dc2, cut(boolean), stop }.
 */
export async function startWan() {
  const proxy = await startProxy(['127.0.10.101', '127.0.10.102'])
  const nodes = []
  const out = {}
  let seed
  try {
    for (const [i, dc] of [[1, 'dc1'], [2, 'dc2']]) {
      const ip = `127.0.10.${i}`
      const p = start(
        (dir) => ['server', '--data-dir', join(dir, 'data'), '--dc', dc, '--rack', `r${i}`,
          '--grpc-addr', `${ip}:0`, '--http-addr', `${ip}:0`, '--gossip-addr', `${ip}:0`,
          '--wan-grpc-addr', proxy.addrs[i], ...(seed ? ['--seeds', seed] : [])],
        (line) => line.startsWith('MERIDIAN_READY'),
      )
      nodes.push(p)
      const ready = (await p.started).find((l) => l.startsWith('MERIDIAN_READY'))
      seed ??= field(ready, 'gossip')
      out[dc] = field(ready, 'grpc')
      await proxy.command(`target ${i} ${out[dc].replace('http://', '')}`)
    }
    for (const dc of ['dc1', 'dc2']) await eventually(() => membersReady(out[dc], 2), `${dc} settled`, START_DEADLINE_MS)
  } catch (e) {
    for (const n of nodes) await n.stop()
    await proxy.stop()
    throw e
  }
  return {
    ...out,
    cut: (on) => proxy.command(on ? 'block' : 'unblock'),
    stop: async () => {
      for (const n of nodes) await n.stop()
      await proxy.stop()
    },
  }
}
