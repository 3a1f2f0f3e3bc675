/**
 * The adapter store as the server uses it (every kind: prefixes, prompt
 * tuning, P-tuning): one object joining its parts, each in its own file —
 * - the catalog (adapter-catalog.ts): uploads, replacements, deletes, reads,
 *   with access rights and quotas;
 * - the engine residency (engine-residency.ts): `resolve(id)` for generation
 *   and what the engine worker holds;
 * - index coherence (index-coherence.ts): pub/sub notices and the periodic
 *   re-check that keep the residency in step with the index;
 * - folder seeding (folder-seed.ts): PREFIX_DIR registered at start-up;
 * - upkeep: the store folder swept of what killed writes left
 *   (store-sweep.ts), and an index that lost its data noticed, announced and
 *   re-seeded (index-data-loss.ts).
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
import { DataLossAlarm, NOT_READY_PERIODS, recoverLostIndex } from './index-data-loss.js'
import { sweepAndLog, type SweepResult } from './store-sweep.js'
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
  log: SeedLogger & CoherenceLog & { error(obj: object, msg: string): void }
  /** The index's own folder (PREFIX_DIR/.store): swept of what killed writes left. */
  storeDir?: string
}

/** How old a temporary file or unreferenced blob must be before a sweep takes it (a write may be in progress). */
const SWEEP_GRACE_MS = 60_000
/** How often the store folder is swept after start-up. */
const SWEEP_EVERY_MS = 10 * 60_000

export class PrefixStore {
  private skipped = new Map<string, Error>()
  private readonly residency: EngineResidency
  private readonly catalog: AdapterCatalog
  private coherence: IndexCoherence | undefined
  private sweepTimer: NodeJS.Timeout | undefined
  private readonly dataLoss: DataLossAlarm
  /** One integrity check at a time: two overlapping ones would both see a lost marker and count one loss twice. */
  private integrity: Promise<boolean> | null = null

  private constructor(private readonly opts: PrefixStoreOptions) {
    this.dataLoss = new DataLossAlarm(NOT_READY_PERIODS * opts.recheckMs)
    this.residency = new EngineResidency(opts.index, opts.model, opts.sink, opts.cacheBytes)
    this.catalog = new AdapterCatalog(opts, this.residency, (id) => this.skipped.delete(id))
  }

  static async open(opts: PrefixStoreOptions): Promise<PrefixStore> {
    const store = new PrefixStore(opts)
    store.skipped = (await seedFromFolder(opts.prefixDir, opts)).skipped
    store.coherence = await IndexCoherence.start(opts.index, store.residency, opts.recheckMs, opts.log)
    store.coherence.checkIntegrity = () => store.checkIntegrity()
    // At start-up an embedded store is this process's alone: whatever a write
    // left is from a process that died. Other replicas may share a disk: wait.
    await store.sweep(opts.index.kind === 'embedded' ? 0 : SWEEP_GRACE_MS)
    store.sweepTimer = setInterval(() => void store.sweep(SWEEP_GRACE_MS), SWEEP_EVERY_MS)
    store.sweepTimer.unref()
    return store
  }

  /** Removes temporary files and unreferenced blobs older than `graceMs`, and logs what went. */
  sweep(graceMs: number): Promise<SweepResult | null> {
    return this.opts.storeDir === undefined ? Promise.resolve(null) : sweepAndLog(this.opts.storeDir, this.opts.index, graceMs, this.opts.log)
  }

  /** Why the store cannot serve right now (Redis unreachable or stalled, its data just lost); null when it can. */
  notReadyReason(): string | null {
    if (!this.reachable) return 'the prefix index (Redis) is unreachable or not answering'
    return this.dataLoss.reason()
  }

  /** Told once per data loss of the index (for metrics). */
  onDataLoss: () => void = () => undefined

  private checkIntegrity(): Promise<boolean> {
    this.integrity ??= (async () => {
      if (await this.opts.index.checkIntact()) return false
      await recoverLostIndex({
        alarm: this.dataLoss,
        log: this.opts.log,
        forgetAll: () => this.residency.remembered().forEach((r) => this.residency.invalidate(r.id)),
        reseed: async () => {
          const seeded = await seedFromFolder(this.opts.prefixDir, this.opts)
          this.skipped = seeded.skipped
          return seeded.imported.length
        },
        onLoss: () => this.onDataLoss(),
      })
      return true
    })().finally(() => (this.integrity = null))
    return this.integrity
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
    clearInterval(this.sweepTimer)
    this.residency.close()
    await this.opts.index.close()
  }
}
