// The Node side of `scripts/bench-sdks.sh`: put and get ops/s with N concurrent callers on
// one client, then the latency of `getResolved` on a key with two siblings, one caller.
//
// `node bench.mjs ENDPOINT SECONDS CALLERS RESOLVES`
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { connect } = require('../../sdk-node/meridian.js')

const [endpoint, seconds, callers, resolves] = process.argv.slice(2)
const client = await connect(endpoint)
const value = Buffer.alloc(100, 'v')
// Puts and gets go to a last-writer-wins keyspace (the script creates it), so blind puts do
// not pile up siblings that later gets would carry.
const KEYSPACE = 'bench-lww'

async function rate(put) {
  let done = 0
  const end = performance.now() + Number(seconds) * 1000
  const started = performance.now()
  await Promise.all(Array.from({ length: Number(callers) }, async (_, c) => {
    for (let i = 0; performance.now() < end; i++) {
      const key = `bench-${c}-${i % 1000}`
      if (put) await client.put(KEYSPACE, key, value)
      else await client.get(KEYSPACE, key)
      done++
    }
  }))
  return done / ((performance.now() - started) / 1000)
}

const put = await rate(true)
const get = await rate(false)
const first = (siblings) => siblings[0]
const micros = []
for (let i = 0; i < Number(resolves); i++) {
  const key = `resolve-n${process.pid}-${i}`
  await client.put('default', key, 'a')
  await client.put('default', key, 'b')
  const t = performance.now()
  await client.getResolved('default', key, first)
  micros.push((performance.now() - t) * 1000)
}
// One caller's plain gets: what a call through the binding costs without a resolver.
const gets = []
for (let i = 0; i < Number(resolves); i++) {
  const t = performance.now()
  await client.get(KEYSPACE, `bench-0-${i % 1000}`)
  gets.push((performance.now() - t) * 1000)
}
gets.sort((a, b) => a - b)
micros.sort((a, b) => a - b)
const pct = (p) => micros[Math.floor((micros.length - 1) * p)]
console.log(`sdk=node callers=${callers} put_ops=${put.toFixed(0)} get_ops=${get.toFixed(0)} get_p50_us=${gets[Math.floor((gets.length - 1) / 2)].toFixed(0)} resolve_p50_us=${pct(0.5).toFixed(0)} resolve_p99_us=${pct(0.99).toFixed(0)}`)
await client.close()
