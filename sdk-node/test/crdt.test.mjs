// CRDT keyspaces through the typed handles, against one real node, and counters and sets
// across a cut WAN link between two datacenters.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, test } from 'node:test'
import { connect, MeridianError } from '../meridian.js'
import { eventually, startNode, startWan } from './helpers.mjs'

let node
let client
before(async () => {
  node = await startNode()
  client = await connect(node.endpoint, { timeoutMs: 20_000 })
})
after(async () => {
  await client?.close()
  await node?.stop()
})

const unique = (p) => `${p}-${randomUUID().slice(0, 8)}`

test('counters, sets, flags, registers and maps through their handles', async () => {
  const [hits, carts, flags, names, profiles] = ['hits', 'carts', 'flags', 'names', 'profiles'].map(unique)
  for (const [name, kind] of [[hits, 'counter'], [carts, 'set'], [flags, 'flag'], [names, 'register'], [profiles, 'map']]) {
    await client.createKeyspace(name, { kind })
  }
  const counter = client.counter(hits, 'home')
  assert.equal(await counter.value(), 0)
  assert.equal(await counter.increment(5), 5)
  assert.equal(await counter.decrement(2), 3)
  assert.equal(await counter.increment(), 4)
  const all = await Promise.all(Array.from({ length: 10 }, () => counter.increment(1)))
  assert.equal(Math.max(...all), 14)

  const cart = client.set(carts, 'u1')
  assert.deepEqual(await cart.add(['pear', Buffer.from('apple')]), ['apple', 'pear'])
  const seen = await cart.fetch()
  await cart.add(['pear'])
  assert.deepEqual(await cart.remove(['pear', 'apple'], seen.context), ['pear'])
  assert.deepEqual(await cart.add([Buffer.from([0xff])]), ['pear', { base64: '/w==' }])

  const flag = client.flag(flags, 'dark')
  assert.equal(await flag.get(), false)
  assert.equal(await flag.enable(), true)
  assert.equal(await flag.disable(), false)

  const reg = client.register(names, 'u1')
  assert.equal((await reg.fetch()).value, null)
  assert.equal((await reg.assign('Ada')).value, 'Ada')

  const profile = client.map(profiles, 'u1')
  const out = await profile.update([{ update: { field: 'visits:counter', op: { increment: 1 } } }])
  assert.deepEqual(out.value, { 'visits:counter': 1 })
})

test('operations that do not fit are MeridianError INVALID_ARGUMENT naming both', async () => {
  const hits = unique('hits')
  await client.createKeyspace(hits, { kind: 'counter' })
  await assert.rejects(client.set(hits, 'k').add(['x']), (e) =>
    e instanceof MeridianError && e.code === 'INVALID_ARGUMENT' && /`add` does not apply to a counter/.test(e.message))
  await assert.rejects(client.put(hits, 'k', '5'), (e) => e.code === 'INVALID_ARGUMENT' && /`put`/.test(e.message))
  await assert.rejects(client.apply(hits, 'k', [{ grow: 1 }]), (e) => e.code === 'INVALID_ARGUMENT' && /unknown operation/.test(e.message))
  await assert.rejects(client.counter(hits, 'k').increment('five'), (e) => e.code === 'INVALID_ARGUMENT')
  // A number that is not a safe integer is refused, not truncated (napi alone makes 1.5 one
  // and NaN zero); BigInts carry amounts and values beyond 2^53 exactly.
  for (const bad of [1.5, NaN, Infinity, 2 ** 60]) {
    await assert.rejects(client.counter(hits, 'k').increment(bad), (e) =>
      e.code === 'INVALID_ARGUMENT' && /Counter\.increment\(\): the amount must be an integer/.test(e.message), `${bad}`)
  }
  await assert.rejects(client.counter(hits, 'k').decrement(2n ** 64n), (e) =>
    e.code === 'INVALID_ARGUMENT' && /64-bit/.test(e.message))
  assert.equal(await client.counter(hits, 'k').value(), 0)
  assert.equal(await client.counter(hits, 'k').increment(2n ** 60n), 2n ** 60n)
  assert.equal(await client.counter(hits, 'k').decrement(2n ** 60n - 7n), 7)
  assert.equal(await client.counter(hits, 'k').increment(-(2n ** 63n)), -(2n ** 63n) + 7n)
})

test('counters and sets across a DC partition converge after it heals', async () => {
  const wan = await startWan()
  const dc1 = await connect(wan.dc1, { localDc: 'dc1', timeoutMs: 20_000 })
  const dc2 = await connect(wan.dc2, { localDc: 'dc2', timeoutMs: 20_000 })
  try {
    const hits = unique('hits')
    const carts = unique('carts')
    await dc1.createKeyspace(hits, { kind: 'counter', replication: { dc1: 1, dc2: 1 } })
    await dc1.createKeyspace(carts, { kind: 'set', replication: { dc1: 1, dc2: 1 } })
    await dc1.set(carts, 'cart').add(['milk'], { consistency: 'ALL' })
    const local = { consistency: 'LOCAL_QUORUM' }
    await wan.cut(true)
    try {
      for (let i = 0; i < 10; i++) {
        await dc1.counter(hits, 'views').increment(1, local)
        await dc2.counter(hits, 'views').increment(10, local)
      }
      // dc1 removes milk (it saw the add); dc2 adds it again, concurrently: add wins.
      await dc1.set(carts, 'cart').remove(['milk'], null, local)
      await dc2.set(carts, 'cart').add(['milk', 'eggs'], local)
      assert.equal(await dc1.counter(hits, 'views').value(local), 10)
      assert.equal(await dc2.counter(hits, 'views').value(local), 100)
    } finally {
      await wan.cut(false)
    }
    for (const [client, dc] of [[dc1, 'dc1'], [dc2, 'dc2']]) {
      await eventually(async () => (await client.counter(hits, 'views').value(local)) === 110, `${dc} counts 110`)
      await eventually(async () => String(await client.set(carts, 'cart').members(local)) === 'eggs,milk', `${dc} keeps the concurrent add`)
    }
  } finally {
    await dc1.close()
    await dc2.close()
    await wan.stop()
  }
})
