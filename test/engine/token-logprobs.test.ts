/**
 * Top-k log probabilities read off a logits row: the same as sorting the
 * whole row and taking log-softmax in float64, ties broken by the lower id,
 * NaN and -Infinity never listed.
 */
import t from 'tap'
import fc from 'fast-check'
import { logNormalizer, topLogprobs } from '../../src/engine/sampling/token-logprobs.js'

/** Brute force: every finite entry, sorted by value (lower id first on ties), log-softmax in float64. */
function bruteForce(row: number[], k: number) {
  const finite = row.map((x, id) => ({ id, x })).filter((e) => Number.isFinite(e.x))
  const max = Math.max(...finite.map((e) => e.x))
  const norm = max + Math.log(finite.reduce((s, e) => s + Math.exp(e.x - max), 0))
  const top = [...finite].sort((a, b) => b.x - a.x || a.id - b.id).slice(0, k)
  return { norm, top: top.map((e) => ({ tokenId: e.id, logprob: e.x - norm })) }
}

t.test('topLogprobs equals sorting the row; logNormalizer equals log-sum-exp', async (t) => {
  // Few distinct values, so ties are common; some NaN and -Infinity.
  const value = fc.oneof(
    fc.integer({ min: -8, max: 8 }).map((x) => x / 2),
    fc.float({ min: -30, max: 30, noNaN: true }),
    fc.constantFrom(Number.NaN, Number.NEGATIVE_INFINITY),
  )
  fc.assert(
    fc.property(fc.array(value, { minLength: 1, maxLength: 80 }), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 5 }), (row, k, pad) => {
      fc.pre(row.some((x) => Number.isFinite(x)))
      // The row sits at an offset inside a larger buffer, as one row of a batch does.
      const buffer = new Float32Array(pad + row.length + 3).fill(100)
      buffer.set(row, pad)
      const exact = bruteForce(Array.from(buffer.subarray(pad, pad + row.length)), k)
      const norm = logNormalizer(buffer, pad, row.length)
      const got = topLogprobs(buffer, pad, row.length, k, norm)
      return (
        Math.abs(norm - exact.norm) < 1e-9 * Math.max(1, Math.abs(exact.norm)) &&
        got.length === exact.top.length &&
        got.every((g, i) => g.tokenId === exact.top[i].tokenId && Math.abs(g.logprob - exact.top[i].logprob) < 1e-9)
      )
    }),
    { numRuns: 500 },
  )
})
