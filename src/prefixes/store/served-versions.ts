/**
 * id → the version this replica serves for it, and back from a blob's sha256
 * to the ids pointing at it. Only ids whose floats the engine holds are
 * remembered (an eviction forgets them), so this stays bounded by the cache
 * budget, however many prefixes the index has.
 */
import type { PrefixRecord } from './prefix-record.js'

export class ServedVersions {
  private readonly current = new Map<string, PrefixRecord>()
  /** sha256 → the remembered ids pointing at it. */
  private readonly idsBySha = new Map<string, Set<string>>()

  get size(): number {
    return this.current.size
  }

  get(id: string): PrefixRecord | undefined {
    return this.current.get(id)
  }

  ids(): string[] {
    return [...this.current.keys()]
  }

  /** Remembers the id's version (replacing any other). */
  remember(record: PrefixRecord): void {
    this.forget(record.id)
    this.current.set(record.id, record)
    let ids = this.idsBySha.get(record.sha256)
    if (ids === undefined) this.idsBySha.set(record.sha256, (ids = new Set()))
    ids.add(record.id)
  }

  /** Forgets the id; returns the sha256 it pointed at if no other remembered id does. */
  forget(id: string): string | null {
    const old = this.current.get(id)
    if (old === undefined) return null
    this.current.delete(id)
    const ids = this.idsBySha.get(old.sha256)
    ids?.delete(id)
    if (ids && ids.size > 0) return null
    this.idsBySha.delete(old.sha256)
    return old.sha256
  }

  /** Forgets every id pointing at a blob (its floats were evicted). */
  forgetBlob(sha256: string): void {
    for (const id of this.idsBySha.get(sha256) ?? []) this.current.delete(id)
    this.idsBySha.delete(sha256)
  }
}
