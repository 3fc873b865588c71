// Two datacenters (`meridian dev`, one node each): a write in one is read in the other.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, test } from 'node:test'
import { connect } from '../meridian.js'
import { eventually, startDev } from './helpers.mjs'

let dev
before(async () => { dev = await startDev() })
after(async () => { await dev?.stop() })

test('a write in dc1 is read in dc2, and concurrent writes become siblings that resolve', async () => {
  const dc1 = await connect(dev.dc1, { localDc: 'dc1', timeoutMs: 20_000 })
  const dc2 = await connect(dev.dc2, { localDc: 'dc2', timeoutMs: 20_000 })
  const k = `cart-${randomUUID()}`
  await dc1.put('demo', k, 'apples', null, { consistency: 'LOCAL_QUORUM' })
  await eventually(async () => (await dc2.get('demo', k, { consistency: 'LOCAL_ONE' })).found, 'replication to dc2')
  const seen = (await dc2.get('demo', k)).context
  await dc1.put('demo', k, 'apples,bread', (await dc1.get('demo', k)).context)
  await dc2.put('demo', k, 'apples,coffee', seen)
  await eventually(async () => (await dc1.get('demo', k)).siblings.length === 2, 'siblings in dc1')
  const union = (s) => [...new Set(s.flatMap((v) => v.toString().split(',')))].sort().join(',')
  assert.equal((await dc1.getResolved('demo', k, union)).toString(), 'apples,bread,coffee')
  await eventually(async () => String((await dc2.get('demo', k)).siblings) === 'apples,bread,coffee', 'the merge reaching dc2')
  await dc1.close()
  await dc2.close()
})

test('counters and sets updated in both DCs converge to the same value in each', async () => {
  const dc1 = await connect(dev.dc1, { localDc: 'dc1', timeoutMs: 20_000 })
  const dc2 = await connect(dev.dc2, { localDc: 'dc2', timeoutMs: 20_000 })
  const hits = `hits-${randomUUID().slice(0, 8)}`
  const carts = `carts-${randomUUID().slice(0, 8)}`
  await dc1.createKeyspace(hits, { kind: 'counter' })
  await dc1.createKeyspace(carts, { kind: 'set' })
  const local = { consistency: 'LOCAL_ONE' }
  for (let i = 0; i < 10; i++) {
    await dc1.counter(hits, 'views').increment(1, local)
    await dc2.counter(hits, 'views').increment(10, local)
  }
  await dc1.set(carts, 'cart').add(['milk'], local)
  await dc2.set(carts, 'cart').add(['eggs'], local)
  for (const [client, dc] of [[dc1, 'dc1'], [dc2, 'dc2']]) {
    await eventually(async () => (await client.counter(hits, 'views').value(local)) === 110, `${dc} counts 110`)
    await eventually(async () => String(await client.set(carts, 'cart').members(local)) === 'eggs,milk', `${dc} holds both adds`)
  }
  await dc1.close()
  await dc2.close()
})
