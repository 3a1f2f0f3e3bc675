/** A sorted list of ids (code-unit order, the same order Redis uses for ASCII) with binary search. */
export class SortedIds {
  private readonly ids: string[] = []

  get size(): number {
    return this.ids.length
  }

  /** Index of the first id > `after` (or of `after` itself with inclusive). */
  private lowerBound(value: string, inclusive: boolean): number {
    let lo = 0
    let hi = this.ids.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.ids[mid] < value || (!inclusive && this.ids[mid] === value)) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  add(id: string): void {
    const at = this.lowerBound(id, true)
    if (this.ids[at] !== id) this.ids.splice(at, 0, id)
  }

  delete(id: string): void {
    const at = this.lowerBound(id, true)
    if (this.ids[at] === id) this.ids.splice(at, 1)
  }

  after(after: string | null, limit: number): string[] {
    const from = after === null ? 0 : this.lowerBound(after, false)
    return this.ids.slice(from, from + limit)
  }
}
