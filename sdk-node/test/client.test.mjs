// The Node client against one real node.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { connect, MeridianError } from '../meridian.js'
import { startNode } from './helpers.mjs'

let node
let client
const key = () => `k-${randomUUID()}`

before(async () => {
  node = await startNode()
  client = await connect(node.endpoint, { timeoutMs: 20_000 })
})

after(async () => {
  await client?.close()
  await node?.stop()
})

test('put, get and delete round-trip with Buffers and strings', async () => {
  const k = key()
  assert.equal((await client.get('default', k)).value, null)
  const w = await client.put('default', k, Buffer.from('v1'))
  assert.deepEqual(w.siblings, [])
  const r = await client.get('default', k)
  assert.equal(r.value.toString(), 'v1')
  assert.ok(r.found)
  await client.put('default', k, 'v2 as a string', r.context)
  assert.deepEqual((await client.get('default', k)).siblings.map(String), ['v2 as a string'])
  await client.delete('default', k, (await client.get('default', k)).context)
  assert.equal((await client.get('default', k)).found, false)
})

test('value of several siblings throws UNRESOLVED_SIBLINGS', async () => {
  const k = key()
  await client.put('default', k, 'a')
  await client.put('default', k, 'b')
  const r = await client.get('default', k)
  assert.deepEqual(r.siblings.map(String).sort(), ['a', 'b'])
  assert.throws(() => r.value, (e) => e instanceof MeridianError && e.code === 'UNRESOLVED_SIBLINGS')
})

test('plain and async resolvers, registered per keyspace or passed per call', async () => {
  const name = `node-carts-${randomUUID().slice(0, 8)}`
  const info = await client.createKeyspace(name)
  assert.equal(info.kind, 'siblings')
  assert.ok((await client.listKeyspaces()).some((k) => k.name === name))
  const carts = client.keyspace(name, { resolver: (s) => s.map(String).sort().join(','), consistency: 'QUORUM' })
  assert.equal(carts.name, name)
  await carts.put('c', 'apples')
  await carts.put('c', 'pears')
  assert.equal((await carts.getResolved('c')).toString(), 'apples,pears')
  await carts.update('c', async (cur) => Buffer.concat([cur, Buffer.from(',plums')]))
  assert.equal((await carts.get('c')).value.toString(), 'apples,pears,plums')
  await carts.put('c', 'x')
  const merged = await client.getResolved(name, 'c', async (s) => {
    await new Promise((r) => setTimeout(r, 10))
    return Buffer.from(s.map(String).sort().join('|'))
  })
  assert.equal(merged.toString(), 'apples,pears,plums|x')
  await carts.update('c', () => null)
  assert.equal((await carts.get('c')).found, false)
  client.setResolver(name, null)
  await client.put(name, 'd', 'a')
  await client.put(name, 'd', 'b')
  await assert.rejects(client.getResolved(name, 'd'), (e) => e.code === 'UNRESOLVED_SIBLINGS')
})

test("a resolver's exception reaches the caller as the same object, and nothing is written", async () => {
  const k = key()
  await client.put('default', k, 'a')
  await client.put('default', k, 'b')
  const mine = new RangeError("the application's own")
  await assert.rejects(client.getResolved('default', k, () => { throw mine }), (e) => e === mine)
  await assert.rejects(client.getResolved('default', k, async () => { throw mine }), (e) => e === mine)
  await assert.rejects(client.update('default', k, () => { throw mine }, (s) => s[0]), (e) => e === mine)
  assert.equal((await client.get('default', k)).siblings.length, 2)
})

test('a resolver past its timeout leaves the siblings', async () => {
  const c = await connect(node.endpoint, { resolverTimeoutMs: 100 })
  const k = key()
  await c.put('default', k, 'a')
  await c.put('default', k, 'b')
  await assert.rejects(
    c.getResolved('default', k, () => new Promise((r) => setTimeout(() => r('late'), 300))),
    (e) => e instanceof MeridianError && e.code === 'RESOLVER_TIMEOUT',
  )
  assert.equal((await c.get('default', k)).siblings.length, 2)
  await c.close()
})

test('bad input is a clear error', async () => {
  await assert.rejects(client.get('default', 'k', { consistency: 'most' }), (e) => e.code === 'INVALID_ARGUMENT' && /consistency/.test(e.message))
  await assert.rejects(client.get('default', 'k', { timeoutMs: -1 }), (e) => e.code === 'INVALID_ARGUMENT' && /timeoutMs/.test(e.message))
  await assert.rejects(client.put('default', 'k', 'v', null, { requestId: Buffer.from('short') }), (e) => /16 bytes/.test(e.message))
  await assert.rejects(client.put('default', '', 'v'), (e) => e.code === 'INVALID_ARGUMENT')
  await assert.rejects(client.get('no-such-keyspace', 'k'), (e) => e instanceof MeridianError && e.code === 'NOT_FOUND')
  await assert.rejects(client.createKeyspace('x', { kind: 'counter-ish' }), (e) => e.code === 'INVALID_ARGUMENT')
  // Counts are whole numbers: napi alone would take -1 as 4294967295 and 1.5 as 1.
  await assert.rejects(client.createKeyspace('x', { replication: { dc1: -1 } }), (e) =>
    e.code === 'INVALID_ARGUMENT' && /replication\.dc1 must be a whole number/.test(e.message))
  await assert.rejects(client.createKeyspace('x', { maxSiblings: 1.5 }), (e) =>
    e.code === 'INVALID_ARGUMENT' && /maxSiblings must be a whole number/.test(e.message))
  await assert.rejects(connect(node.endpoint, { retries: -1 }), (e) =>
    e.code === 'INVALID_ARGUMENT' && /retries must be a whole number/.test(e.message))
  // A key of the wrong type is refused by the binding's argument check, naming the call.
  await assert.rejects(async () => client.get('default', 42), (e) => e instanceof MeridianError && e.code === 'INVALID_ARGUMENT' && /Client\.get\(\): an argument has the wrong type/.test(e.message))
  await assert.rejects(connect(42), (e) => e.code === 'INVALID_ARGUMENT' && /connect\(\)/.test(e.message))
})

test('an unreachable endpoint rejects at connect', async () => {
  await assert.rejects(connect('http://127.0.0.1:1', { connectTimeoutMs: 1000, timeoutMs: 1000 }), (e) => e.code === 'UNAVAILABLE')
})

test('a closed client rejects with CANCELLED', async () => {
  const c = await connect(node.endpoint)
  await c.put('default', key(), 'v')
  await c.close()
  assert.ok(c.closed)
  await assert.rejects(c.get('default', 'k'), (e) => e.code === 'CANCELLED')
})

test('many concurrent calls with resolvers do not block the JS thread', async () => {
  const keys = Array.from({ length: 100 }, key)
  await Promise.all(keys.flatMap((k) => [client.put('default', k, 'a'), client.put('default', k, 'b')]))
  let ticks = 0
  const timer = setInterval(() => ticks++, 1)
  const merged = await Promise.all(keys.map((k) => client.getResolved('default', k, (s) => s.map(String).sort().join('+'))))
  clearInterval(timer)
  assert.deepEqual(merged.map(String), keys.map(() => 'a+b'))
})

test('a process that used resolvers exits on its own after close()', async () => {
  const script = `
    const { connect } = require(${JSON.stringify(fileURLToPath(new URL('../meridian.js', import.meta.url)))})
    ;(async () => {
      const c = await connect(${JSON.stringify(node.endpoint)})
      await c.put('default', 'exit-k', 'a'); await c.put('default', 'exit-k', 'b')
      await c.getResolved('default', 'exit-k', (s) => s[0])
      await c.close()
      console.log('closed')
    })()`
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d) => { out += d })
  const code = await new Promise((resolve, reject) => {
    const t = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('the process did not exit within 30 s of close()')) }, 30_000)
    child.on('exit', (c) => { clearTimeout(t); resolve(c) })
  })
  assert.equal(code, 0)
  assert.equal(out.trim(), 'closed')
})
