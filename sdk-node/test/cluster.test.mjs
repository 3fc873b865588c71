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
