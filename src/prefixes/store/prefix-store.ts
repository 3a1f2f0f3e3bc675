/**
 * The adapter store as the server uses it (every kind: prefixes, prompt
 * tuning, P-tuning): one object joining its parts, each in its own file —
 * - the catalog (adapter-catalog.ts): uploads, replacements, deletes, reads,
 *   with access rights and quotas;
 * - the engine residency (engine-residency.ts): `resolve(id)` for generation
 *   and what the engine worker holds;
 * - index coherence (index-coherence.ts): pub/sub notices and the periodic
 *   re-check that keep the residency in step with the index;
 * - folder seeding (folder-seed.ts): PREFIX_DIR registered at start-up.
 */
import type { Principal } from '../../auth/api-keys.js'
import { PrefixNotFoundError } from '../../errors.js'
import type { ServedModel } from '../adapter-kind.js'
import { isValidPrefixId } from '../../domain/prefix-id.js'
import { AdapterCatalog, type DescribedRecord, type Upload } from './adapter-catalog.js'
import type { AdapterSink } from './engine-prefix-cache.js'
import { EngineResidency, type CacheEvent } from './engine-residency.js'
import { seedFromFolder, type SeedLogger } from './folder-seed.js'
import { IndexCoherence, type CoherenceLog } from './index-coherence.js'
import type { PrefixIndex, ResolvedPrefix } from './prefix-record.js'
import type { TenantQuota } from './tenant-quota.js'

export type { Upload } from './adapter-catalog.js'

export interface PrefixStoreOptions {
  index: PrefixIndex
  /** Per-tenant storage limits (admins are not limited). */
  quota: TenantQuota
  /** The loaded model's shape and the adapter contributions its graph takes. */
  model: ServedModel
  sink: AdapterSink
  /** The folder whose sub-folders are registered at start-up. */
  prefixDir: string
  cacheBytes: number
  maxFileBytes: number
  recheckMs: number
  log: SeedLogger & CoherenceLog
}

export class PrefixStore {
  private skipped = new Map<string, Error>()
  private readonly residency: EngineResidency
  private readonly catalog: AdapterCatalog
  private coherence: IndexCoherence | undefined

  private constructor(private readonly opts: PrefixStoreOptions) {
    this.residency = new EngineResidency(opts.index, opts.model, opts.sink, opts.cacheBytes)
    this.catalog = new AdapterCatalog(opts, this.residency, (id) => this.skipped.delete(id))
  }

  static async open(opts: PrefixStoreOptions): Promise<PrefixStore> {
    const store = new PrefixStore(opts)
    store.skipped = (await seedFromFolder(opts.prefixDir, opts)).skipped
    store.coherence = await IndexCoherence.start(opts.index, store.residency, opts.recheckMs, opts.log)
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
  set onCacheEvent(listener: (event: CacheEvent) => void) {
    this.residency.onCacheEvent = listener
  }

  /** Bytes and count of materialized adapters held for the engine, the budget, and how many ids point at them. */
  cacheStats(): { bytes: number; prefixes: number; budget: number; ids: number } {
    return this.residency.stats()
  }

  create(id: string, upload: Upload, principal: Principal): Promise<DescribedRecord> {
    return this.catalog.create(id, upload, principal)
  }

  replace(id: string, upload: Upload, principal: Principal): Promise<DescribedRecord> {
    return this.catalog.replace(id, upload, principal)
  }

  remove(id: string, principal: Principal): Promise<void> {
    return this.catalog.remove(id, principal)
  }

  get(id: string, principal: Principal): Promise<DescribedRecord> {
    return this.catalog.get(id, principal)
  }

  list(cursor: string | null, limit: number, principal: Principal): Promise<{ records: DescribedRecord[]; nextCursor: string | null }> {
    return this.catalog.list(cursor, limit, principal)
  }

  download(id: string, principal: Principal): Promise<{ record: DescribedRecord; blob: Buffer }> {
    return this.catalog.download(id, principal)
  }

  /** The engine key of the id's current version, materializing it in the engine when needed. */
  resolve(id: string, principal: Principal): Promise<ResolvedPrefix> {
    if (!isValidPrefixId(id)) return Promise.reject(new PrefixNotFoundError(id))
    // A folder that was refused at start-up answers with its reason, not a bare 404.
    return this.residency.resolve(id, principal, (missing) => this.skipped.get(missing) ?? new PrefixNotFoundError(missing))
  }

  /** The safety net under pub/sub (see IndexCoherence). */
  recheck(): Promise<void> {
    return this.coherence?.recheck() ?? Promise.resolve()
  }

  async close(): Promise<void> {
    this.coherence?.stop()
    this.residency.close()
    await this.opts.index.close()
  }
}
