// A shopping cart edited in two datacenters at once.
//
// Both datacenters change the cart from the same version without seeing each other's change,
// so the cart gets two siblings. The application's resolver merges them: every item added
// anywhere stays and every removal is honoured, because each addition carries a tag and a
// removal deletes the tags it saw (an observed-remove set).
//
// Run `meridian dev`, then `node examples/node/cart.mjs`.
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { connect } = require('../../sdk-node/meridian.js')

const load = (value) => {
  const doc = value ? JSON.parse(value) : { items: {}, removed: [] }
  return { items: doc.items, removed: new Set(doc.removed) }
}
const dump = ({ items, removed }) => {
  const sorted = Object.fromEntries(Object.keys(items).sort().map((k) => [k, [...items[k]].sort()]))
  return JSON.stringify({ items: sorted, removed: [...removed].sort() })
}
const visible = (value) => (value ? Object.keys(load(value).items).sort() : [])

/** Union of additions, minus every tag some sibling removed. */
function mergeCarts(siblings) {
  const items = {}
  const removed = new Set()
  for (const sibling of siblings) {
    const theirs = load(sibling)
    theirs.removed.forEach((t) => removed.add(t))
    for (const [item, tags] of Object.entries(theirs.items)) items[item] = [...new Set([...(items[item] ?? []), ...tags])]
  }
  for (const item of Object.keys(items)) {
    items[item] = items[item].filter((t) => !removed.has(t))
    if (items[item].length === 0) delete items[item]
  }
  return dump({ items, removed })
}

const add = (item) => (current) => {
  const cart = load(current)
  cart.items[item] = [...(cart.items[item] ?? []), randomUUID()]
  return dump(cart)
}
const remove = (item) => (current) => {
  const cart = load(current)
  for (const tag of cart.items[item] ?? []) cart.removed.add(tag)
  delete cart.items[item]
  return dump(cart)
}

async function waitFor(what, check, deadlineMs = 60_000) {
  const end = Date.now() + deadlineMs
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`cart example: ${what} did not happen within ${deadlineMs / 1000} s`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const dc1 = await connect(process.env.MERIDIAN_DC1 ?? 'http://127.0.0.11:7070', { localDc: 'dc1' })
const dc2 = await connect(process.env.MERIDIAN_DC2 ?? 'http://127.0.0.21:7070', { localDc: 'dc2' })
await dc1.createKeyspace('carts')
const carts1 = dc1.keyspace('carts', { resolver: mergeCarts, consistency: 'LOCAL_QUORUM' })
const carts2 = dc2.keyspace('carts', { resolver: mergeCarts, consistency: 'LOCAL_QUORUM' })
const cart = `cart:${randomUUID()}`

await carts1.update(cart, add('apples'))
await carts1.update(cart, add('bread'))
await waitFor('the cart reaching dc2', async () => String(visible((await carts2.get(cart)).value)) === 'apples,bread')

// Both DCs edit the same version, each unaware of the other.
const base1 = await carts1.get(cart)
const base2 = await carts2.get(cart)
await carts1.put(cart, add('coffee')(remove('bread')(base1.value)), base1.context)
await carts2.put(cart, add('dates')(base2.value), base2.context)
await waitFor('both edits meeting in dc1', async () => (await carts1.get(cart)).siblings.length === 2)
console.log('siblings in dc1:', (await carts1.get(cart)).siblings.map(visible).sort())

const merged = await carts1.getResolved(cart)
console.log('merged cart:', visible(merged))
const expected = 'apples,coffee,dates'
if (String(visible(merged)) !== expected) throw new Error(`cart example: merged cart is ${visible(merged)}, expected ${expected}`)
await waitFor('the merge reaching dc2', async () => String(visible((await carts2.get(cart)).value)) === expected)
console.log('dc2 reads the merged cart: ok')
await dc1.close()
await dc2.close()
