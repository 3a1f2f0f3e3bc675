/**
 * 10,000 registered prefixes: registration through the store (validated,
 * durable), listing every page, and memory while every one of them is
 * resolved in turn with a small cache budget: what the engine holds stays
 * within PREFIX_CACHE_BYTES, whatever the number of prefixes.
 */
import { join } from 'node:path'
import type { AdapterContribution } from '../src/domain/adapter-contribution.js'
import { EmbeddedIndex } from '../src/prefixes/store/embedded-index.js'
import type { PrefixIndex } from '../src/prefixes/store/prefix-record.js'
import { PrefixStore } from '../src/prefixes/store/prefix-store.js'
import { RedisIndex } from '../src/prefixes/store/redis-index.js'
import { log, nativeUpload, quantile, specOf, summary, timed, type Shape } from './store-shared.js'

/** Store-level tests and benches act as an admin with no storage limits. */
const ADMIN = { tenant: 'admin', role: 'admin' } as const
const UNLIMITED = { maxPrefixes: Number.MAX_SAFE_INTEGER, maxBytes: Number.MAX_SAFE_INTEGER }

const SHAPE: Shape = { layers: 2, kvHeads: 2, headDim: 16 }
const P = 8
const KV_BYTES = 2 * SHAPE.layers * SHAPE.kvHeads * P * SHAPE.headDim * 4

/** Holds what it is given, as the engine worker does. */
class HoldingSink {
  readonly held = new Map<string, AdapterContribution>()
  putAdapter(key: string, adapter: AdapterContribution): void {
    this.held.set(key, adapter)
  }
  dropAdapter(key: string): void {
    this.held.delete(key)
  }
}

/** JS heap and ArrayBuffer backing stores (where floats and file reads live), in MiB, after a GC when --expose-gc allows. */
const memory = () => {
  ;(globalThis as { gc?: () => void }).gc?.()
  const m = process.memoryUsage()
  return { heap: m.heapUsed / 2 ** 20, buffers: m.arrayBuffers / 2 ** 20 }
}

async function scaleOne(index: PrefixIndex, dir: string, count: number, budget: number) {
  const sink = new HoldingSink()
  const store = await PrefixStore.open({ index, model: { spec: specOf(SHAPE), accepts: new Set(['past_kv']) }, sink, prefixDir: join(dir, 'none'), cacheBytes: budget, maxFileBytes: 1 << 20, recheckMs: 500, quota: UNLIMITED, log })
  const uploads: number[] = []
  const registerStart = performance.now()
  for (let i = 0; i < count; i++) {
    const files = nativeUpload(SHAPE, P, i)
    uploads.push((await timed(() => store.create(`prefix-${String(i).padStart(5, '0')}`, { files }, ADMIN))).ms)
  }
  const registerMs = performance.now() - registerStart
  const pages: number[] = []
  let listed = 0
  let cursor: string | null = null
  let previous = ''
  const listStart = performance.now()
  do {
    const { value } = await timed(() => store.list(cursor, 100, ADMIN))
    for (const r of value.records) {
      if (r.id <= previous) throw new Error('list out of order')
      previous = r.id
    }
    listed += value.records.length
    cursor = value.nextCursor
  } while (cursor !== null && pages.push(0))
  const listMs = performance.now() - listStart
  if (listed !== count) throw new Error(`listed ${listed} of ${count}`)
  // Memory: wait out drop grace periods from the uploads, then resolve every prefix once.
  await new Promise((r) => setTimeout(r, 1100))
  const before = memory()
  const resolves: number[] = []
  let maxCache = 0
  let maxIds = 0
  for (let i = 0; i < count; i++) {
    resolves.push((await timed(() => store.resolve(`prefix-${String(i).padStart(5, '0')}`, ADMIN))).ms)
    maxCache = Math.max(maxCache, store.cacheStats().bytes)
    maxIds = Math.max(maxIds, store.cacheStats().ids)
  }
  await new Promise((r) => setTimeout(r, 1100))
  const after = memory()
  const held = sink.held.size
  await store.close()
  return { registerMs, uploads, listMs, pages: pages.length + 1, resolves, maxCache, maxIds, held, before, after }
}

export async function scale(opts: { dir: string; redisUrl: string; count: number }): Promise<string[]> {
  const budget = 4 * 2 ** 20
  const rows: string[] = []
  for (const kind of ['embedded', 'redis'] as const) {
    const dir = join(opts.dir, `scale-${kind}`)
    const index =
      kind === 'embedded'
        ? await EmbeddedIndex.open(join(dir, '.store'))
        : await RedisIndex.open({ url: opts.redisUrl, blobDir: join(dir, '.store', 'blobs'), timeoutMs: 2000, keyPrefix: 'scale:' })
    const r = await scaleOne(index, dir, opts.count, budget)
    process.stderr.write(`scale ${kind}: ${JSON.stringify({ ...r, uploads: undefined, resolves: undefined })}\n`)
    rows.push(
      `| ${kind} | ${(r.registerMs / 1000).toFixed(1)} s (${summary(r.uploads)}) | ${r.pages} pages in ${r.listMs.toFixed(0)} ms | ` +
        `${summary(r.resolves)} (p99.9 ${quantile(r.resolves, 0.999).toFixed(2)}) | ${(r.maxCache / 2 ** 20).toFixed(2)} MiB, ${r.held} held, ≤ ${r.maxIds} ids remembered | ` +
        `${r.before.heap.toFixed(1)} → ${r.after.heap.toFixed(1)} MiB | ${r.before.buffers.toFixed(1)} → ${r.after.buffers.toFixed(1)} MiB |`,
    )
  }
  const all = ((opts.count * KV_BYTES) / 2 ** 20).toFixed(0)
  return [
    `${opts.count.toLocaleString('en-US')} registered prefixes (2 layers, 2 kv heads, head 16, ${P} tokens: ${KV_BYTES / 1024} KiB of floats each, ${all} MiB for all), ` +
      `PREFIX_CACHE_BYTES 4 MiB; each prefix resolved once, cold, in id order (every resolve is a miss and an eviction):`,
    '',
    '| index | register all (per upload median / p99 ms) | list everything, 100 per page | resolve, cold, median / p99 ms | largest cache / prefixes the engine holds after / ids remembered | JS heap before → after resolving all | array buffers before → after (floats the engine side holds, file reads not yet collected) |',
    '|---|---|---|---|---|---|---|',
    ...rows,
  ]
}
