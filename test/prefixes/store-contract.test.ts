/**
 * One contract, two index implementations: the embedded single-node index and
 * the Redis index (against a real redis-server). Both must store, version,
 * list, seed, announce and survive a reopen the same way.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sha256Hex } from '../../src/prefixes/store/blob-files.js'
import { EmbeddedIndex } from '../../src/prefixes/store/embedded-index.js'
import type { PrefixIndex, PrefixRecord } from '../../src/prefixes/store/prefix-record.js'
import { RedisIndex } from '../../src/prefixes/store/redis-index.js'
import { startRedis } from '../helpers/redis-server.js'

function record(id: string, blob: Buffer, extra: Partial<PrefixRecord> = {}): PrefixRecord {
  return {
    id, version: 1, sha256: sha256Hex(blob), num_virtual_tokens: 3, num_layers: 2, num_kv_heads: 2, head_dim: 4,
    dtype: 'F32', bytes: blob.length, format: 'native', description: 'd', owner: 'anonymous', visibility: 'public',
    source: 'upload', created_at: new Date().toISOString(), updated_at: new Date().toISOString(), ...extra,
  }
}

const blobA = Buffer.from('blob A: any bytes, the index does not parse them')
const blobB = Buffer.from('blob B')

type Opener = () => Promise<PrefixIndex>

function contract(name: string, open: Opener) {
  t.test(`${name}: create, conflict, replace, get, remove`, async (t) => {
    const index = await open()
    t.teardown(() => index.close())
    const changes: string[] = []
    index.watch({ changed: (id) => changes.push(id), resync: () => undefined })
    const epoch0 = await index.epoch()

    const created = await index.commit(record('alpha', blobA), blobA, 'create')
    t.equal(created.status, 'written')
    if (created.status !== 'written') return
    t.equal(created.record.version, 1)
    t.equal(created.previous, null)
    t.not(await index.epoch(), epoch0, 'the change counter moved')

    const again = await index.commit(record('alpha', blobB), blobB, 'create')
    t.equal(again.status, 'exists', 'create on a taken id is refused')
    t.equal((await index.get('alpha'))!.sha256, sha256Hex(blobA), 'and changes nothing')
    t.equal(await index.readBlob(sha256Hex(blobB)), null, 'and leaves no blob behind')

    await new Promise((r) => setTimeout(r, 5))
    const replaced = await index.commit(record('alpha', blobB, { description: 'v2' }), blobB, 'upsert')
    if (replaced.status !== 'written') return t.fail('upsert must write')
    t.equal(replaced.record.version, 2)
    t.equal(replaced.record.created_at, created.record.created_at, 'created_at is kept')
    t.equal(replaced.previous?.sha256, sha256Hex(blobA))
    t.same(await index.readBlob(sha256Hex(blobB)), blobB)
    t.equal(await index.readBlob(sha256Hex(blobA)), null, 'a blob no id points at is removed')

    t.equal((await index.remove('alpha'))?.version, 2)
    t.equal(await index.remove('alpha'), null)
    t.equal(await index.get('alpha'), null)
    t.equal(await index.readBlob(sha256Hex(blobB)), null)
    // Announcements may arrive asynchronously (pub/sub).
    for (let i = 0; i < 100 && changes.length < 3; i++) await new Promise((r) => setTimeout(r, 10))
    t.same(changes, ['alpha', 'alpha', 'alpha'])
  })

  t.test(`${name}: replace holds only over the version it read`, async (t) => {
    const index = await open()
    t.teardown(() => index.close())
    t.equal((await index.commit(record('rho', blobA), blobA, 'create')).status, 'written')
    const v2 = await index.commit(record('rho', blobB), blobB, 'replace', undefined, 1)
    t.equal(v2.status, 'written', 'over the version read: written')
    if (v2.status === 'written') t.equal(v2.record.version, 2)
    const stale = await index.commit(record('rho', blobA), blobA, 'replace', undefined, 1)
    t.equal(stale.status, 'conflict', 'over a version replaced meanwhile: refused')
    if (stale.status === 'conflict') t.equal(stale.record?.version, 2, 'naming the version that is there')
    t.equal((await index.get('rho'))!.sha256, sha256Hex(blobB), 'and nothing changed')
    t.same([...(await index.referencedBlobs())], [sha256Hex(blobB)], 'the one blob referenced (what sweeps keep)')
    t.equal(await index.readBlob(sha256Hex(blobA)), null, 'no blob left behind')
    await index.remove('rho')
    const gone = await index.commit(record('rho', blobA), blobA, 'replace', undefined, 2)
    t.same(gone, { status: 'conflict', record: null }, 'a deleted id is never brought back')
    t.equal(await index.get('rho'), null)
  })

  t.test(`${name}: a blob shared by two ids lives until both are gone`, async (t) => {
    const index = await open()
    t.teardown(() => index.close())
    await index.commit(record('one', blobA), blobA, 'create')
    await index.commit(record('two', blobA), blobA, 'create')
    await index.remove('one')
    t.same(await index.readBlob(sha256Hex(blobA)), blobA)
    await index.remove('two')
    t.equal(await index.readBlob(sha256Hex(blobA)), null)
  })

  t.test(`${name}: list pages in id order; getMany; count`, async (t) => {
    const index = await open()
    t.teardown(() => index.close())
    const ids = ['b', 'a', 'C', 'a.b', 'a-b', 'a_b', 'z9', '0']
    for (const id of ids) await index.commit(record(id, blobA), blobA, 'create')
    const sorted = [...ids].sort()
    t.equal(await index.count(), ids.length)
    const seen: string[] = []
    let after: string | null = null
    for (;;) {
      const page: PrefixRecord[] = await index.list(after, 3)
      if (page.length === 0) break
      seen.push(...page.map((r) => r.id))
      after = page[page.length - 1].id
    }
    t.same(seen, sorted, 'byte order of ids, each exactly once')
    const many = await index.getMany(['a', 'missing', 'z9'])
    t.same(many.map((r) => r?.id ?? null), ['a', null, 'z9'])
    t.same(await index.getMany([]), [])
  })

  t.test(`${name}: seeding imports once, never over an upload`, async (t) => {
    const index = await open()
    t.teardown(() => index.close())
    const seed = (id: string, blob: Buffer) => index.commit(record(id, blob, { source: 'folder' }), blob, 'seed', sha256Hex(blob))
    t.equal((await seed('folder', blobA)).status, 'written')
    t.equal((await seed('folder', blobA)).status, 'unchanged', 'same folder content: nothing to do')
    const changed = await seed('folder', blobB)
    t.equal(changed.status === 'written' && changed.record.version, 2, 'changed folder content: a new version')
    await index.remove('folder')
    t.equal((await seed('folder', blobB)).status, 'unchanged', 'a deleted folder prefix stays deleted')
    await index.commit(record('up', blobA), blobA, 'create')
    t.equal((await seed('up', blobB)).status, 'unchanged', 'an upload wins over a folder')
    t.equal((await index.get('up'))!.sha256, sha256Hex(blobA))
  })
}

// --- the embedded index ---------------------------------------------------------
const root = mkdtempSync(join(tmpdir(), 'prefixd-contract-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))
let n = 0
contract('embedded', () => EmbeddedIndex.open(join(root, `store-${n++}`)))

t.test('embedded: the index survives a reopen', async (t) => {
  const dir = join(root, 'reopen')
  const first = await EmbeddedIndex.open(dir)
  await first.commit(record('kept', blobA), blobA, 'create')
  await first.commit(record('kept', blobB), blobB, 'upsert')
  await first.close()
  const second = await EmbeddedIndex.open(dir)
  t.equal((await second.get('kept'))?.version, 2)
  t.same(await second.readBlob(sha256Hex(blobB)), blobB)
  await second.close()
})

// --- the Redis index: one server, a fresh database per test ------------------------
const redis = await startRedis(t)
let db = 0
const openRedis = (blobDir: string, dbNumber: number) =>
  RedisIndex.open({ url: `${redis.url}/${dbNumber}`, blobDir, timeoutMs: 1000 })
contract('redis', () => {
  db++
  return openRedis(join(root, `redis-blobs-${db}`), db)
})

t.test('redis: a replica without a local copy reads the blob from Redis', async (t) => {
  const a = await openRedis(join(root, 'replica-a'), 15)
  const b = await openRedis(join(root, 'replica-b'), 15)
  t.teardown(async () => {
    await a.close()
    await b.close()
  })
  await a.commit(record('shared', blobA), blobA, 'create')
  t.same(await b.readBlob(sha256Hex(blobA)), blobA, 'from Redis, then cached on disk')
  t.equal((await b.get('shared'))?.sha256, sha256Hex(blobA))
})

t.test('redis: commands fail fast with store_unavailable while Redis is down', async (t) => {
  const index = await openRedis(join(root, 'down'), 14)
  t.teardown(() => index.close())
  await index.commit(record('x', blobA), blobA, 'create')
  await redis.kill()
  const started = Date.now()
  await t.rejects(index.get('x'), { code: 'PREFIXD_STORE_UNAVAILABLE' })
  await t.rejects(index.commit(record('y', blobB), blobB, 'create'), { code: 'PREFIXD_STORE_UNAVAILABLE' })
  t.ok(Date.now() - started < 3000, `failed within ${Date.now() - started} ms`)
  t.same(await index.readBlob(sha256Hex(blobA)), blobA, 'local copies still serve')
  await redis.restart()
  // ioredis reconnects on its own.
  let got: PrefixRecord | null | undefined
  for (let i = 0; i < 100 && got === undefined; i++) {
    got = await index.get('x').catch(() => undefined)
    if (got === undefined) await new Promise((r) => setTimeout(r, 50))
  }
  t.equal(got, null, 'back without a restart (a non-persistent server lost its data, as configured)')
})

t.test('redis: an unreachable REDIS_URL fails the open with a clear error', async (t) => {
  await t.rejects(RedisIndex.open({ url: 'redis://127.0.0.1:1', blobDir: join(root, 'nowhere'), timeoutMs: 300 }), {
    code: 'PREFIXD_STORE_UNAVAILABLE',
    message: /cannot reach Redis/,
  })
})
