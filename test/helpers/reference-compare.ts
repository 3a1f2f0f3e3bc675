/**
 * The tolerance every logits comparison uses: max|a - b| <= rel · max(1, max|b|),
 * relative to the expected vector's scale but never tighter than absolute rel.
 */
export interface Closeness {
  ok: boolean
  maxDiff: number
  bound: number
}

export function closeness(actual: ArrayLike<number>, expected: ArrayLike<number>, rel = 1e-4): Closeness {
  if (actual.length !== expected.length) return { ok: false, maxDiff: Infinity, bound: 0 }
  let maxDiff = 0
  let scale = 1
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i] - expected[i])
    // NaN must fail, and NaN > x is false, hence the explicit check.
    maxDiff = Number.isNaN(diff) ? Infinity : Math.max(maxDiff, diff)
    scale = Math.max(scale, Math.abs(expected[i]))
  }
  const bound = rel * scale
  return { ok: maxDiff <= bound, maxDiff, bound }
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i
  return best
}
