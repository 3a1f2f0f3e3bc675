/**
 * Keeps the prefix label's cardinality bounded: at most `limit` distinct
 * values get their own series, the most used ones; every other prefix is
 * counted under OTHER_LABEL. A prefix that outgrows the least used labelled
 * one (by a margin, so two prefixes of similar use don't flap) takes its place;
 * the evicted one's series are dropped through `onEvict`.
 */
export const OTHER_LABEL = '__other__'

/** How much more use an unlabelled prefix needs before it takes a label. */
const PROMOTION_FACTOR = 2

export class LabelGuard {
  private readonly uses = new Map<string, number>()
  private readonly labelled = new Set<string>()

  constructor(
    private readonly limit: number,
    private readonly onEvict: (label: string) => void,
  ) {}

  /** Records one use and returns the label value to report it under. */
  label(value: string): string {
    const uses = (this.uses.get(value) ?? 0) + 1
    this.uses.set(value, uses)
    if (this.labelled.has(value)) return value
    if (this.labelled.size < this.limit) {
      this.labelled.add(value)
      return value
    }
    const least = this.leastUsedLabelled()
    if (least !== undefined && uses > PROMOTION_FACTOR * (this.uses.get(least) ?? 0)) {
      this.labelled.delete(least)
      this.onEvict(least)
      this.labelled.add(value)
      return value
    }
    return OTHER_LABEL
  }

  /** Forgets a value (a deleted prefix) and drops its series. */
  forget(value: string): void {
    this.uses.delete(value)
    if (this.labelled.delete(value)) this.onEvict(value)
  }

  /** Forgets every value `matches` accepts (a deleted prefix and the compositions naming it). */
  forgetWhere(matches: (value: string) => boolean): void {
    for (const value of [...this.uses.keys()]) if (matches(value)) this.forget(value)
    for (const value of [...this.labelled]) if (matches(value)) this.forget(value)
  }

  private leastUsedLabelled(): string | undefined {
    let least: string | undefined
    let min = Infinity
    for (const v of this.labelled) {
      const n = this.uses.get(v) ?? 0
      if (n < min) {
        min = n
        least = v
      }
    }
    return least
  }
}
