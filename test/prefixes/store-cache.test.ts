/**
 * The memory side of the store: the engine's prefix LRU (bounded in bytes,
 * mirrored with putAdapter/dropAdapter, drops after a grace period), a store
 * resolving many prefixes within its budget, and the periodic re-check that
 * catches a change whose pub/sub notice was lost (against a real Redis).
 */
import t from 'tap'
import { Redis } from 'ioredis'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ModelSpec } from '../../src/domain/model-spec.js'
import type { AdapterContribution } from '../../src/domain/adapter-contribution.js'
import { EmbeddedIndex } from '../../src/prefixes/store/embedded-index.js'
import { EnginePrefixCache, type AdapterSink } from '../../src/prefixes/store/engine-prefix-cache.js'
import type { PrefixIndex } from '../../src/prefixes/store/prefix-record.js'
import { PrefixStore } from '../../src/prefixes/store/prefix-store.js'
import { RedisIndex } from '../../src/prefixes/store/redis-index.js'
import { buildNativeFile } from '../helpers/prefix-fixtures.js'
import { startRedis } from '../helpers/redis-server.js'

/** Store-level tests and benches act as an admin with no storage limits. */
const ADMIN = { tenant: 'admin', role: 'admin' } as const
const UNLIMITED = { maxPrefixes: Number.MAX_SAFE_INTEGER, maxBytes: Number.MAX_SAFE_INTEGER }

class RecordingSink implements AdapterSink {
  readonly held = new Map<string, AdapterContribution>()
  readonly events: string[] = []
  putAdapter(key: string, adapter: AdapterContribution): void {
    this.held.set(key, adapter)
    this.events.push(`put ${key}`)
  }
  dropAdapter(key: string): void {
    this.held.delete(key)
    this.events.push(`drop ${key}`)
  }
}

/** A prefix of P tokens over 1 layer, 1 head of size 1: 2 * P * 4 bytes. */
const kv = (P: number): AdapterContribution => ({
  kind: 'past_kv',
  prefix: { numVirtualTokens: P, numLayers: 1, numKvHeads: 1, headDim: 1, keys: [new Float32Array(P)], values: [new Float32Array(P)] },
})
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('the LRU evicts least recently used first, within its byte budget', async (t) => {
  const sink = new RecordingSink()
  const cache = new EnginePrefixCache(sink, 3 * 8, 20) // room for three one-token prefixes
  t.teardown(() => cache.close())
  for (const k of ['a', 'b', 'c']) cache.admit(k, kv(1))
  t.equal(cache.bytes, 24)
  t.ok(cache.touch('a'), 'a is now the most recent')
  cache.admit('d', kv(1))
  t.equal(cache.size, 3)
  t.notOk(cache.touch('b'), 'b, the least recently used, went')
  t.ok(sink.held.has('b'), 'the worker keeps it through the grace period')
  await sleep(40)
  t.notOk(sink.held.has('b'), 'then it is dropped')
  t.same(sink.events, ['put a', 'put b', 'put c', 'put d', 'drop b'])

  cache.admit('big', kv(3)) // the whole budget: everything else goes, the newcomer stays
  t.same([cache.size, cache.bytes], [1, 24])
  cache.admit('a', kv(1)) // back during its grace: no second put, no drop
  await sleep(40)
  t.ok(sink.held.has('a'))
  t.equal(sink.events.filter((e) => e === 'put a').length, 1)
  t.equal(sink.events.filter((e) => e === 'drop a').length, 0)
  cache.delete('missing') // a no-op
})

const spec: ModelSpec = {
  modelType: 'llama', numLayers: 2, numAttentionHeads: 2, numKvHeads: 2, headDim: 4, hiddenSize: 8,
  vocabSize: 16, maxPositions: 64, bosTokenId: 1, eosTokenIds: [2], padTokenId: null,
  valueHeadDim: 4, prefixRefusal: null, quantization: null, batchInvariant: true, graphRewrites: [],
}
const native = (seed: number) => [{ filename: 'prefix.safetensors', data: buildNativeFile({ layers: 2, kvHeads: 2, headDim: 4, P: 3, seed }).file }]
const perPrefix = 2 * 2 * 2 * 3 * 4 * 4 // keys + values, 2 layers, 2 heads, 3 tokens, head 4, float32
const log = { warn: () => undefined, info: () => undefined, debug: () => undefined, error: () => undefined }
const root = mkdtempSync(join(tmpdir(), 'prefixd-cache-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

async function openStore(t: { teardown(fn: () => unknown): void }, index: PrefixIndex, sink: AdapterSink, cacheBytes: number, recheckMs = 1000) {
  const store = await PrefixStore.open({ index, model: { spec, accepts: new Set(['past_kv']) }, sink, prefixDir: join(root, 'none'), cacheBytes, maxFileBytes: 1 << 20, recheckMs, quota: UNLIMITED, log })
  t.teardown(() => store.close())
  return store
}

t.test('resolving many prefixes stays within the cache budget', async (t) => {
  const sink = new RecordingSink()
  const store = await openStore(t, await EmbeddedIndex.open(join(root, 'many')), sink, 5 * perPrefix)
  for (let i = 0; i < 40; i++) await store.create(`p${i}`, { files: native(i) }, ADMIN)
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 40; i++) {
      const r = await store.resolve(`p${i}`, ADMIN)
      t.equal(r.numVirtualTokens, 3)
      t.ok(store.cacheStats().bytes <= 5 * perPrefix)
    }
  }
  t.equal(store.cacheStats().prefixes, 5)
  t.equal(store.cacheStats().ids, 5, 'ids are remembered only while their floats are held')
  await sleep(1100) // past the drop grace
  t.equal(sink.held.size, 5, 'the worker holds only what the budget allows')
  t.equal(store.kind, 'embedded')
})

t.test('the periodic re-check catches a change whose notice was lost', async (t) => {
  const redis = await startRedis(t)
  const sink = new RecordingSink()
  const store = await openStore(t, await RedisIndex.open({ url: redis.url, blobDir: join(root, 'recheck'), timeoutMs: 1000 }), sink, 1 << 20, 300)
  const v1 = await store.create('x', { files: native(1) }, ADMIN)
  const other = await store.create('other', { files: native(2) }, ADMIN)
  t.equal((await store.resolve('x', ADMIN)).key, v1.sha256)
  // Point x at other's blob behind the store's back: no PUBLISH, only the counters a real write moves.
  const raw = new Redis(redis.url)
  t.teardown(() => raw.quit())
  await raw.hset('prefixd:index', 'x', JSON.stringify({ ...v1, sha256: other.sha256, version: 2 }))
  await raw.hincrby('prefixd:refs', other.sha256, 1)
  await raw.incr('prefixd:epoch')
  const started = Date.now()
  let key = v1.sha256
  while (key === v1.sha256 && Date.now() - started < 2000) {
    await sleep(20)
    key = (await store.resolve('x', ADMIN)).key
  }
  t.equal(key, other.sha256, `the new version serves after ${Date.now() - started} ms, without any notice`)
  t.ok(Date.now() - started < 1000)
})
