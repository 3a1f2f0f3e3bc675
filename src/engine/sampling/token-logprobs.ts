/**
 * Log probabilities read off one logits row in place: the normalizer
 * (log-sum-exp) and the k most likely tokens. For OpenAI's top logprobs and
 * for scoring prompt tokens (echo with logprobs); the sampler keeps its own
 * faster path for the chosen token alone.
 */
import { sumExpShifted } from './fast-exp.js'

export interface TokenLogprob {
  tokenId: number
  logprob: number
}

/** log Σ e^x over row[offset, offset + length): logprob(i) = row[offset + i] - normalizer. NaN entries count as -Infinity. */
export function logNormalizer(row: Float32Array, offset: number, length: number): number {
  let max = Number.NEGATIVE_INFINITY
  for (let i = offset; i < offset + length; i++) if (row[i] > max) max = row[i]
  return max + Math.log(sumExpShifted(row, offset, length, max))
}

/**
 * The k largest entries of the row as token ids with their log probabilities,
 * most likely first, the lower id first on ties. One pass keeping a sorted
 * list of k: after the first few hundred entries almost every one is smaller
 * than the k-th best and costs one comparison.
 */
export function topLogprobs(row: Float32Array, offset: number, length: number, k: number, normalizer: number): TokenLogprob[] {
  const ids: number[] = []
  const values: number[] = []
  for (let i = 0; i < length; i++) {
    const x = row[offset + i]
    if (!(x > Number.NEGATIVE_INFINITY)) continue // NaN or -Infinity: never a top token
    if (ids.length === k && !(x > values[k - 1])) continue
    let at = Math.min(ids.length, k - 1)
    while (at > 0 && x > values[at - 1]) at--
    ids.splice(at, 0, i)
    values.splice(at, 0, x)
    if (ids.length > k) {
      ids.pop()
      values.pop()
    }
  }
  return ids.map((tokenId, j) => ({ tokenId, logprob: values[j] - normalizer }))
}
