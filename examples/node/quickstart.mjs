// The README's Node.js section, run by the test command against `meridian dev`.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const endpoint = process.env.MERIDIAN_DC1 ?? 'http://127.0.0.11:7070'
const packagePath = new URL('../../sdk-node/meridian.js', import.meta.url).pathname

// [start connect]
const { connect, MeridianError } = require(packagePath) // require('@meridian/client') once installed

const client = await connect(endpoint, { timeoutMs: 5000 }) // or an array of endpoints
// [end connect]

// [start readwrite]
await client.put('demo', 'cart:1', 'apples') // no context: a blind write
const read = await client.get('demo', 'cart:1', { consistency: 'LOCAL_QUORUM' })
console.log(read.siblings, read.value) // [ <Buffer 61 70 ...> ] <Buffer 61 70 ...>
await client.put('demo', 'cart:1', 'apples,pears', read.context) // replaces what the read saw
await client.delete('demo', 'cart:1', (await client.get('demo', 'cart:1')).context)
// [end readwrite]
assert.equal((await client.get('demo', 'cart:1')).found, false)

// Start clean, so that the blind writes below make exactly two siblings on every run.
await client.delete('demo', 'cart:2')

// [start resolve]
const union = (siblings) => [...new Set(siblings.flatMap((s) => s.toString().split(',')))].sort().join(',')

const carts = client.keyspace('demo', { resolver: union }) // registered for the keyspace
await carts.put('cart:2', 'apples')
await carts.put('cart:2', 'pears') // two blind writes: siblings
console.log(String(await carts.getResolved('cart:2'))) // apples,pears, written back
await carts.update('cart:2', (cart) => `${cart ?? ''},plums`) // read, resolve, change, write
// A resolver or update function may also be async, returning a Promise.
// [end resolve]
assert.equal(String((await carts.get('cart:2')).value), 'apples,pears,plums')

// [start errors]
try {
  await client.get('no-such-keyspace', 'k')
} catch (e) {
  console.log(e instanceof MeridianError, e.code) // true NOT_FOUND
}
try {
  await client.put('demo', 'k', 'x'.repeat(20_000))
} catch (e) {
  console.log(e.code, e.message) // INVALID_ARGUMENT ... limit
}
await client.close()
// [end errors]
