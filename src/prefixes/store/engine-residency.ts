/**
 * What the engine holds, seen from the main thread: for each id this replica
 * has resolved, the version it serves, and whether that version's floats are
 * in the engine cache. Resolving an id reads the index once, materializes the
 * version (read its blob, parse it as its kind, check it still fits the
 * model) and remembers it; a change to the id (an upload here, a pub/sub
 * notice or a re-check from elsewhere) makes it forget.
 *
 * Versions are immutable (one sha256 each) and the engine key of a version is
 * its sha256, so a request runs to the end on the version it resolved, while
 * the next request sees whatever the id points at now. Materializing happens
 * here on the main thread, asynchronously; the worker only ever receives
 * finished floats.
 */
import { PrefixNotFoundError } from '../../errors.js'
import type { Principal } from '../../auth/api-keys.js'
import type { AdapterContribution } from '../../domain/adapter-contribution.js'
import type { ServedModel } from '../adapter-kind.js'
import { readNativeFile } from '../adapter-files.js'
import { kindNamed } from '../adapter-kinds.js'
import { EnginePrefixCache, type AdapterSink } from './engine-prefix-cache.js'
import { canSee, visibleOrMissing } from './prefix-access.js'
import type { PrefixIndex, PrefixRecord, ResolvedPrefix } from './prefix-record.js'

export type CacheEvent = 'hit' | 'miss' | 'eviction'

function resolved(record: PrefixRecord): ResolvedPrefix {
  return { id: record.id, key: record.sha256, numVirtualTokens: record.num_virtual_tokens }
}

export class EngineResidency {
  /**
   * id → the version this replica serves for it. Only ids whose floats the
   * engine holds are remembered (an eviction forgets them), so this map is
   * bounded by the cache budget too, however many adapters the index has.
   */
  private readonly current = new Map<string, PrefixRecord>()
  /** sha256 → the remembered ids pointing at it. */
  private readonly idsBySha = new Map<string, Set<string>>()
  private readonly loading = new Map<string, Promise<void>>()
  private readonly cache: EnginePrefixCache
  /** Bumped by every invalidation: a read that raced one is not remembered. */
  private generation = 0

  /** Told about every cache hit, miss and eviction (for metrics). */
  onCacheEvent: (event: CacheEvent) => void = () => undefined

  constructor(
    private readonly index: PrefixIndex,
    private readonly model: ServedModel,
    sink: AdapterSink,
    cacheBytes: number,
  ) {
    this.cache = new EnginePrefixCache(sink, cacheBytes)
    this.cache.onEvict = (sha) => {
      this.onCacheEvent('eviction')
      for (const id of this.idsBySha.get(sha) ?? []) this.current.delete(id)
      this.idsBySha.delete(sha)
    }
  }

  /** Bytes and count of materialized adapters held for the engine, the budget, and how many ids point at them. */
  stats(): { bytes: number; prefixes: number; budget: number; ids: number } {
    return { bytes: this.cache.bytes, prefixes: this.cache.size, budget: this.cache.budgetBytes, ids: this.current.size }
  }

  /** The engine key of the id's current version, materializing it in the engine when needed. */
  async resolve(id: string, principal: Principal, missing: (id: string) => Error): Promise<ResolvedPrefix> {
    const known = this.current.get(id)
    // Ownership first: an adapter the caller may not see takes the same path as
    // a missing id (one index read, then "not found"), so answering fast from
    // the cache cannot tell a tenant that another one's private adapter exists.
    if (known !== undefined && canSee(principal, known) && this.cache.touch(known.sha256)) {
      this.onCacheEvent('hit')
      return resolved(known)
    }
    const generation = this.generation
    const record = await this.index.get(id)
    if (record === null) throw missing(id)
    visibleOrMissing(principal, id, record)
    await this.materialize(record)
    // A read that raced a change is used once but not remembered.
    if (generation === this.generation) this.remember(record)
    return resolved(record)
  }

  /** The uploading replica has the floats already: hands them to the engine now and remembers the version. */
  admitWritten(record: PrefixRecord, contribution: AdapterContribution): void {
    this.invalidate(record.id)
    this.cache.admit(record.sha256, contribution)
    this.remember(record)
  }

  /** Forgets the id's version; its floats go too unless another id shares them. */
  invalidate(id: string): void {
    this.generation++
    const orphan = this.forget(id)
    if (orphan !== null) this.cache.delete(orphan)
  }

  /** The ids remembered with the sha256 of the version each serves (for the coherence re-check). */
  remembered(): Array<{ id: string; sha256: string }> {
    return [...this.current.values()].map((r) => ({ id: r.id, sha256: r.sha256 }))
  }

  close(): void {
    this.cache.close()
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
    const blob = await this.index.readBlob(record.sha256)
    // The version was replaced or deleted between reading the record and its blob.
    if (blob === null) throw new PrefixNotFoundError(record.id)
    const loaded = readNativeFile(blob)
    kindNamed(loaded.kind).assertServable(loaded.contribution, this.model, record.id)
    this.cache.admit(record.sha256, loaded.contribution)
  }
}
