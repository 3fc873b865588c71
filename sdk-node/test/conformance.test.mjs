// The SDK conformance cases (conformance/cases.json) through the Node SDK. The Rust and
// Python suites run the same file.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { after, before, test } from 'node:test'
import { connect, MeridianError } from '../meridian.js'
import { startNode } from './helpers.mjs'

const CASES = JSON.parse(readFileSync(new URL('../../conformance/cases.json', import.meta.url)))
const TIMEOUT_MS = CASES.resolver_timeout_ms

class Refused extends Error {}

const text = (v) => (typeof v === 'string' ? v : v.repeat.repeat(v.times))
const items = (v) => new Set((v ? v.toString() : '').split(',').filter((s) => s))
const join = (s) => Buffer.from([...s].sort().join(','))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const RESOLVERS = {
  union: (siblings) => join(new Set(siblings.flatMap((s) => [...items(s)]))),
  raise: () => { throw new Refused('resolver refused') },
  slow: async () => { await sleep(TIMEOUT_MS * 3); return 'too late' },
}

let node
let client
const runId = randomBytes(5).toString('hex')

before(async () => {
  node = await startNode()
  client = await connect(node.endpoint, { timeoutMs: 20_000, resolverTimeoutMs: TIMEOUT_MS })
})

after(async () => {
  await client?.close()
  await node?.stop()
})

CASES.cases.forEach((c, n) => {
  test(c.name, async () => {
    const own = `node-${runId}-${n}`
    const spec = c.keyspace ?? {}
    await client.createKeyspace(own, { kind: spec.kind, maxValueBytes: spec.max_value_bytes, maxSiblings: spec.max_siblings })
    const saved = {}
    const ids = {}
    for (const [s, step] of c.steps.entries()) {
      const at = `step ${s} (${JSON.stringify(step)})`
      const ks = (step.keyspace ?? own).replace('{case}', own)
      const key = text(step.key ?? '')
      let ctx = step.context ? saved[step.context] : null
      if (step.context_raw) ctx = Buffer.from(step.context_raw)
      const opts = step.request_id ? { requestId: (ids[step.request_id] ??= randomBytes(16)) } : undefined
      const resolver = step.resolver ? RESOLVERS[step.resolver] : null
      const expect = step.expect ?? {}
      let out
      try {
        switch (step.op) {
          case 'put': out = await client.put(ks, key, text(step.value), ctx, opts); break
          case 'delete': out = await client.delete(ks, key, ctx, opts); break
          case 'get': out = await client.get(ks, key); break
          case 'get_resolved': out = await client.getResolved(ks, key, resolver); break
          case 'update':
            out = await client.update(ks, key, (current) => {
              if (step.delete) return null
              const all = items(current)
              if (step.append) all.add(step.append)
              return join(all)
            }, resolver)
            break
          case 'apply': out = await client.apply(ks, key, step.ops, ctx, opts); break
          case 'fetch': out = await client.fetch(ks, key); break
          case 'create_keyspace':
            out = await client.createKeyspace(ks, { kind: step.kind, replication: step.replication })
            break
          default: throw new Error(`unknown op ${step.op}`)
        }
      } catch (e) {
        if (e instanceof Refused) {
          assert.equal(expect.error, 'RESOLVER_FAILED', `${at}: ${e}`)
          continue
        }
        assert.ok(e instanceof MeridianError, `${at}: ${e}`)
        assert.equal(e.code, expect.error, `${at}: ${e.message}`)
        continue
      }
      assert.equal(expect.error, undefined, `${at}: succeeded, expected ${expect.error}`)
      if (expect.siblings) {
        assert.deepEqual(out.siblings.map(String).sort(), [...expect.siblings].sort(), at)
      }
      if ('crdt' in expect) {
        assert.deepEqual(out.value, expect.crdt, at)
      }
      if ('value' in expect) {
        assert.equal(out === null ? null : out.toString(), expect.value, at)
      }
      if (step.save) saved[step.save] = out.context
    }
  })
})
