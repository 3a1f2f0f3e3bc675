/**
 * Which materialized adapters (of every kind) the engine worker holds, least
 * recently used first, bounded in bytes (PREFIX_CACHE_BYTES). Admitting one
 * sends its contribution to the worker (putAdapter); evicting one tells the
 * worker to forget it (dropAdapter). The floats themselves live in the worker only: the main thread
 * keeps keys and sizes, so the budget is not paid twice.
 *
 * A drop is sent after a grace period rather than at once: a request that has
 * just resolved its prefix but not yet been submitted must still find it in
 * the worker. Requests already running hold their own references, so a drop
 * never disturbs them. Re-admitting a key during its grace cancels the drop.
 */
import { contributionBytes, type AdapterContribution } from '../../domain/adapter-contribution.js'

export interface AdapterSink {
  putAdapter(key: string, adapter: AdapterContribution): void
  dropAdapter(key: string): void
}

export class EnginePrefixCache {
  /** key → bytes, in recency order (Map keeps insertion order; a touch re-inserts). */
  private readonly entries = new Map<string, number>()
  private readonly pendingDrops = new Map<string, NodeJS.Timeout>()
  private total = 0

  /** Told about every key that leaves, so owners of per-key bookkeeping can let go too. */
  onEvict: (key: string) => void = () => undefined

  constructor(
    private readonly sink: AdapterSink,
    readonly budgetBytes: number,
    private readonly dropGraceMs = 1000,
  ) {}

  get bytes(): number {
    return this.total
  }

  get size(): number {
    return this.entries.size
  }

  /** True if the worker holds the key; marks it recently used. */
  touch(key: string): boolean {
    const bytes = this.entries.get(key)
    if (bytes === undefined) return false
    this.entries.delete(key)
    this.entries.set(key, bytes)
    return true
  }

  /** Sends the adapter to the worker and evicts the least recently used others until the budget holds. */
  admit(key: string, adapter: AdapterContribution): void {
    if (this.touch(key)) return
    const bytes = contributionBytes(adapter)
    const pending = this.pendingDrops.get(key)
    if (pending) {
      // The worker still has it: cancel the drop instead of sending it again.
      clearTimeout(pending)
      this.pendingDrops.delete(key)
    } else {
      this.sink.putAdapter(key, adapter)
    }
    this.entries.set(key, bytes)
    this.total += bytes
    // The newest entry always stays, even alone over the budget: it is about to be used.
    for (const [old] of this.entries) {
      if (this.total <= this.budgetBytes || old === key) break
      this.delete(old)
    }
  }

  /** Forgets a key (after its grace period in the worker). */
  delete(key: string): void {
    const bytes = this.entries.get(key)
    if (bytes === undefined) return
    this.entries.delete(key)
    this.total -= bytes
    this.onEvict(key)
    const timer = setTimeout(() => {
      this.pendingDrops.delete(key)
      this.sink.dropAdapter(key)
    }, this.dropGraceMs)
    timer.unref()
    this.pendingDrops.set(key, timer)
  }

  close(): void {
    for (const timer of this.pendingDrops.values()) clearTimeout(timer)
    this.pendingDrops.clear()
  }
}
