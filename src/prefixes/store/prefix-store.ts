/**
 * The prefix store as the server uses it: uploads, replacements and deletes
 * through the index, and `resolve(id)` for generation.
 *
 * Versions are immutable (one sha256 each) and the engine key of a version is
 * its sha256, so a request runs to the end on the version it resolved, while
 * the next request sees whatever the id points at now. This replica forgets
 * an id's version as soon as its own write returns, other replicas when the
 * pub/sub notice arrives, and a periodic re-check of the index's change
 * counter catches any notice lost to a disconnect.
 *
 * Materializing a prefix (read the blob, parse, validate) happens here on the
 * main thread, asynchronously; the worker only ever receives finished floats.
 */
import type { ModelSpec } from '../../domain/model-spec.js'
import { PrefixExistsError, PrefixNotFoundError } from '../../errors.js'
import { readNativePrefix } from '../native-format.js'
import { isValidPrefixId } from '../../domain/prefix-id.js'
import { assertPrefixFitsModel } from '../shape-check.js'
import { EnginePrefixCache, type PrefixSink } from './engine-prefix-cache.js'
import { newRecord, seedFromFolder, type SeedLogger } from './folder-seed.js'
import type { Principal } from '../../auth/api-keys.js'
import { canSee, modifiableOrRefused, visibleOrMissing } from './prefix-access.js'
import type { PrefixIndex, PrefixRecord, ResolvedPrefix, Visibility } from './prefix-record.js'
import { assertWithinQuota, type TenantQuota } from './tenant-quota.js'
import { parseUpload, toStoredBlob, type UploadedFile } from './upload-conversion.js'

export interface PrefixStoreOptions {
  index: PrefixIndex
  /** Per-tenant storage limits (admins are not limited). */
  quota: TenantQuota
  spec: ModelSpec
  sink: PrefixSink
  /** The folder whose sub-folders are registered at start-up. */
  prefixDir: string
  cacheBytes: number
  maxFileBytes: number
  recheckMs: number
  log: SeedLogger & { debug(obj: object, msg: string): void }
}

export interface Upload {
  files: UploadedFile[]
  description?: string
  /** Default: private for a new prefix, unchanged for a replacement. */
  visibility?: Visibility
}

function resolved(record: PrefixRecord): ResolvedPrefix {
  return { id: record.id, key: record.sha256, numVirtualTokens: record.num_virtual_tokens }
}

export class PrefixStore {
  /**
   * id → the version this replica serves for it. Only ids whose floats the
   * engine holds are remembered (an eviction forgets them), so this map is
   * bounded by the cache budget too, however many prefixes the index has.
   */
  private readonly current = new Map<string, PrefixRecord>()
  /** sha256 → the remembered ids pointing at it. */
  private readonly idsBySha = new Map<string, Set<string>>()
  private readonly loading = new Map<string, Promise<void>>()
  private readonly cache: EnginePrefixCache
  private skipped = new Map<string, Error>()
  /** Bumped by every invalidation: a read that raced one is not remembered. */
  private generation = 0
  private lastEpoch = -1
  private timer: NodeJS.Timeout | undefined

  private constructor(private readonly opts: PrefixStoreOptions) {
    this.cache = new EnginePrefixCache(opts.sink, opts.cacheBytes)
    this.cache.onEvict = (sha) => {
      this.onCacheEvent('eviction')
      for (const id of this.idsBySha.get(sha) ?? []) this.current.delete(id)
      this.idsBySha.delete(sha)
    }
  }

  static async open(opts: PrefixStoreOptions): Promise<PrefixStore> {
    const store = new PrefixStore(opts)
    const seeded = await seedFromFolder(opts.prefixDir, opts)
    store.skipped = seeded.skipped
    opts.index.watch({
      changed: (id) => store.invalidate(id),
      resync: () => {
        store.lastEpoch = -1
        void store.recheck()
      },
    })
    store.lastEpoch = await opts.index.epoch()
    store.timer = setInterval(() => void store.recheck(), opts.recheckMs)
    store.timer.unref()
    return store
  }

  get kind(): PrefixIndex['kind'] {
    return this.opts.index.kind
  }

  /** False while the index (Redis) cannot be reached: the server is then not ready. */
  get reachable(): boolean {
    return this.opts.index.reachable()
  }

  /** Told about every cache hit, miss and eviction (for metrics). */
  onCacheEvent: (event: 'hit' | 'miss' | 'eviction') => void = () => undefined

  /** Bytes and count of materialized prefixes held for the engine, the budget, and how many ids point at them. */
  cacheStats(): { bytes: number; prefixes: number; budget: number; ids: number } {
    return { bytes: this.cache.bytes, prefixes: this.cache.size, budget: this.cache.budgetBytes, ids: this.current.size }
  }

  /** POST: a new id, owned by the caller. */
  create(id: string, upload: Upload, principal: Principal): Promise<PrefixRecord> {
    return this.write(id, upload, principal, null)
  }

  /**
   * PUT: a new version of an existing id. A missing id is 404 (not created),
   * so that another tenant's private prefix answers exactly like a missing one.
   */
  async replace(id: string, upload: Upload, principal: Principal): Promise<PrefixRecord> {
    const existing = modifiableOrRefused(principal, id, isValidPrefixId(id) ? await this.opts.index.get(id) : null)
    return this.write(id, upload, principal, existing)
  }

  private async write(id: string, upload: Upload, principal: Principal, existing: PrefixRecord | null): Promise<PrefixRecord> {
    if (!isValidPrefixId(id)) throw new PrefixNotFoundError(id)
    // Everything is validated before the index or the disk sees a byte.
    const loaded = parseUpload(upload.files, this.opts.maxFileBytes)
    const stored = toStoredBlob(loaded, this.opts.spec, id)
    // A replacement keeps its owner (an admin replacing a tenant's prefix does not take it).
    const owner = existing?.owner ?? principal.tenant
    if (principal.role !== 'admin') await assertWithinQuota(this.opts.index, owner, id, stored.blob.length, this.opts.quota)
    const record = newRecord(id, stored, {
      description: upload.description ?? existing?.description ?? '',
      source: 'upload',
      owner,
      visibility: upload.visibility ?? existing?.visibility ?? 'private',
    })
    const outcome = await this.opts.index.commit(record, stored.blob, existing === null ? 'create' : 'upsert')
    if (outcome.status === 'exists') {
      throw new PrefixExistsError(`prefix '${id}' exists (version ${outcome.record.version}); replace it with PUT /prefixes/${id}`)
    }
    if (outcome.status !== 'written') throw new Error(`unexpected commit outcome ${outcome.status}`)
    this.skipped.delete(id)
    this.invalidate(id)
    // The uploading replica has the floats already: hand them to the engine now.
    this.cache.admit(outcome.record.sha256, loaded.prefix)
    this.remember(outcome.record)
    return outcome.record
  }

  async remove(id: string, principal: Principal): Promise<void> {
    modifiableOrRefused(principal, id, isValidPrefixId(id) ? await this.opts.index.get(id) : null)
    const removed = await this.opts.index.remove(id)
    if (removed === null) throw new PrefixNotFoundError(id)
    this.invalidate(id)
  }

  async get(id: string, principal: Principal): Promise<PrefixRecord> {
    return visibleOrMissing(principal, id, isValidPrefixId(id) ? await this.opts.index.get(id) : null)
  }

  /**
   * A page of the records the caller may see, ordered by id, and the cursor
   * of the next page (null on the last). Pages of others' private prefixes
   * are skipped over, so a page is full unless it is the last.
   */
  async list(cursor: string | null, limit: number, principal: Principal): Promise<{ records: PrefixRecord[]; nextCursor: string | null }> {
    const records: PrefixRecord[] = []
    let after = cursor
    for (;;) {
      const page = await this.opts.index.list(after, limit + 1)
      for (const r of page) if (canSee(principal, r)) records.push(r)
      if (records.length > limit) return { records: records.slice(0, limit), nextCursor: records[limit - 1].id }
      if (page.length <= limit) return { records, nextCursor: null }
      after = page[page.length - 1].id
    }
  }

  /** The stored native file of the id's current version. */
  async download(id: string, principal: Principal): Promise<{ record: PrefixRecord; blob: Buffer }> {
    const record = await this.get(id, principal)
    const blob = await this.opts.index.readBlob(record.sha256)
    if (blob === null) throw new PrefixNotFoundError(id)
    return { record, blob }
  }

  /** The engine key of the id's current version, materializing it in the engine when needed. */
  async resolve(id: string, principal: Principal): Promise<ResolvedPrefix> {
    if (!isValidPrefixId(id)) throw new PrefixNotFoundError(id)
    const known = this.current.get(id)
    if (known !== undefined && this.cache.touch(known.sha256)) {
      this.onCacheEvent('hit')
      return resolved(visibleOrMissing(principal, id, known))
    }
    const generation = this.generation
    const record = await this.opts.index.get(id)
    if (record === null) throw this.skipped.get(id) ?? new PrefixNotFoundError(id)
    visibleOrMissing(principal, id, record)
    await this.materialize(record)
    // A read that raced a change is used once but not remembered.
    if (generation === this.generation) this.remember(record)
    return resolved(record)
  }

  /** Remembers the id's version; its floats must be in the cache (an eviction forgets it again). */
  private remember(record: PrefixRecord): void {
    this.forget(record.id)
    this.current.set(record.id, record)
    let ids = this.idsBySha.get(record.sha256)
    if (ids === undefined) this.idsBySha.set(record.sha256, (ids = new Set()))
    ids.add(record.id)
  }

  /** Forgets the id; returns the sha256 it pointed at if no other remembered id does. */
  private forget(id: string): string | null {
    const old = this.current.get(id)
    if (old === undefined) return null
    this.current.delete(id)
    const ids = this.idsBySha.get(old.sha256)
    ids?.delete(id)
    if (ids && ids.size > 0) return null
    this.idsBySha.delete(old.sha256)
    return old.sha256
  }

  private async materialize(record: PrefixRecord): Promise<void> {
    if (this.cache.touch(record.sha256)) return this.onCacheEvent('hit')
    this.onCacheEvent('miss')
    let pending = this.loading.get(record.sha256)
    if (pending === undefined) {
      pending = this.load(record).finally(() => this.loading.delete(record.sha256))
      this.loading.set(record.sha256, pending)
    }
    await pending
  }

  private async load(record: PrefixRecord): Promise<void> {
    const blob = await this.opts.index.readBlob(record.sha256)
    // The version was replaced or deleted between reading the record and its blob.
    if (blob === null) throw new PrefixNotFoundError(record.id)
    const { prefix } = readNativePrefix(blob)
    assertPrefixFitsModel(prefix, this.opts.spec, record.id)
    this.cache.admit(record.sha256, prefix)
  }

  /** Forgets the id's version; its floats go too unless another id shares them. */
  private invalidate(id: string): void {
    this.generation++
    const orphan = this.forget(id)
    if (orphan !== null) this.cache.delete(orphan)
  }

  /** The safety net under pub/sub: when the index's change counter moved, re-read every remembered id. */
  async recheck(): Promise<void> {
    try {
      const epoch = await this.opts.index.epoch()
      if (epoch === this.lastEpoch) return
      const ids = [...this.current.keys()]
      const records = await this.opts.index.getMany(ids)
      ids.forEach((id, i) => {
        const known = this.current.get(id)
        if (known !== undefined && records[i]?.sha256 !== known.sha256) this.invalidate(id)
      })
      this.lastEpoch = epoch
    } catch (err) {
      this.opts.log.debug({ err }, 'prefix index re-check failed; will retry')
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer)
    this.cache.close()
    await this.opts.index.close()
  }
}
