import t from 'tap'
import fc from 'fast-check'
import { SeededRandom, randomSeed, MAX_SEED } from '../../src/engine/sampling/rng.js'
import { TokenSampler, normalizeSamplingParams, type SamplingParams } from '../../src/engine/sampling/sampler.js'
import { collectTopK, selectLargest } from '../../src/engine/sampling/top-selection.js'
import { expNonPositive } from '../../src/engine/sampling/fast-exp.js'
import { softmax } from '../helpers/reference-math.js'

const base: SamplingParams = { doSample: true, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 42 }
const sampler = (p: Partial<SamplingParams>, vocab: number) => new TokenSampler({ ...base, ...p }, vocab)
const row = (values: number[]) => Float32Array.from(values)

/** Reference top-k + top-p filter, by full sort: the ids a draw may return. */
function allowedIds(logits: ArrayLike<number>, temperature: number, topK: number, topP: number): Set<number> {
  const probs = softmax(logits, temperature)
  let ids = Array.from(logits, (_, i) => i).sort((a, b) => logits[b] - logits[a])
  if (topK > 0 && topK < ids.length) {
    const kth = logits[ids[topK - 1]]
    ids = ids.filter((i) => logits[i] >= kth)
  }
  if (topP >= 1) return new Set(ids)
  ids.sort((a, b) => probs[b] - probs[a])
  const mass = ids.reduce((s, i) => s + probs[i], 0)
  const allowed = new Set<number>()
  // A token is in if what ranks strictly above it is short of top_p (with float
  // slack at the edge, and ties all in: which of them a sampler keeps is arbitrary).
  let strictlyAbove = 0
  for (let g = 0; g < ids.length; ) {
    let end = g
    let groupMass = 0
    // Probabilities within 1e-9 of each other count as tied: the sampler's own
    // arithmetic cannot be expected to order them as Math.exp does.
    while (end < ids.length && probs[ids[g]] - probs[ids[end]] <= 1e-9 * probs[ids[g]]) groupMass += probs[ids[end++]]
    if (strictlyAbove / mass >= topP + 1e-9) break
    for (let j = g; j < end; j++) allowed.add(ids[j])
    strictlyAbove += groupMass
    g = end
  }
  return allowed
}

const logitsArb = (min: number, max: number) =>
  fc.array(fc.float({ min: -20, max: 20, noNaN: true, noDefaultInfinity: true }), { minLength: min, maxLength: max })

t.test('rng: xoshiro128** reference outputs, ranges, seeding', async (t) => {
  // Worked by hand from the published algorithm with state {1, 2, 3, 4}.
  const ref = SeededRandom.fromState([1, 2, 3, 4])
  t.same([ref.nextUint32(), ref.nextUint32(), ref.nextUint32()], [11520, 0, 5927040])

  const a = new SeededRandom(7)
  const b = new SeededRandom(7)
  const c = new SeededRandom(8)
  const xs = Array.from({ length: 20 }, () => a.nextFloat())
  t.same(Array.from({ length: 20 }, () => b.nextFloat()), xs, 'same seed, same stream')
  t.not(Array.from({ length: 20 }, () => c.nextFloat()).join(), xs.join(), 'adjacent seeds differ')

  let sum = 0
  let min = 1
  let max = 0
  const n = 100_000
  const rng = new SeededRandom(MAX_SEED)
  for (let i = 0; i < n; i++) {
    const x = rng.nextFloat()
    sum += x
    min = Math.min(min, x)
    max = Math.max(max, x)
  }
  t.ok(min >= 0 && max < 1, 'in [0, 1)')
  t.ok(Math.abs(sum / n - 0.5) < 0.005, `mean ${sum / n} near 0.5`)

  const seeds = [randomSeed(), randomSeed(), randomSeed()]
  for (const s of seeds) t.ok(Number.isSafeInteger(s) && s >= 0, `random seed ${s} is a safe non-negative integer`)
  t.ok(new Set(seeds).size === 3, 'random seeds differ')
  // Seeds come from blocks of the OS generator: across a block's end they still differ and stay in range.
  const many = Array.from({ length: 1500 }, () => randomSeed())
  t.equal(new Set(many).size, many.length, '1500 seeds in a row, across blocks, all differ')
  t.ok(many.every((s) => Number.isSafeInteger(s) && s >= 0 && s <= MAX_SEED), 'every one a valid seed')
  for (const bad of [-1, 1.5, Number.NaN, 2 ** 53]) t.throws(() => new SeededRandom(bad), RangeError)
})

t.test('fast exp matches Math.exp', async (t) => {
  let worst = 0
  for (let d = 0; d > -700; d -= 0.0137) worst = Math.max(worst, Math.abs(expNonPositive(d) / Math.exp(d) - 1))
  t.ok(worst < 1e-12, `relative error ${worst}`)
  t.equal(expNonPositive(0), 1)
  t.equal(expNonPositive(Number.NEGATIVE_INFINITY), 0)
  t.equal(expNonPositive(Number.NaN), 0)
})

t.test('partial selection: selectLargest and collectTopK', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: -5, max: 5 }), { minLength: 2, maxLength: 300 }), fc.nat(), (values, k0) => {
      const key = Float64Array.from(values)
      const k = (k0 % (values.length - 1)) + 1
      const out = new Int32Array(values.length)
      const count = collectTopK(key, values.length, k, new Int32Array(k), out)
      const kth = [...values].sort((a, b) => b - a)[k - 1]
      const expected = values.flatMap((v, i) => (v >= kth ? [i] : []))
      return count >= k && Array.from(out.subarray(0, count)).join() === expected.join()
    }),
  )

  fc.assert(
    fc.property(fc.array(fc.integer({ min: -5, max: 5 }), { minLength: 1, maxLength: 300 }), fc.nat(), (values, k0) => {
      const key = Float64Array.from(values)
      const ids = Int32Array.from(values.map((_, i) => i))
      const k = (k0 % values.length) + 1
      selectLargest(ids, 0, values.length, k, key)
      const front = Array.from(ids.subarray(0, k), (i) => key[i])
      const back = Array.from(ids.subarray(k), (i) => key[i])
      return (
        [...ids].sort((a, b) => a - b).every((id, i) => id === i) &&
        (back.length === 0 || Math.min(...front) >= Math.max(...back))
      )
    }),
  )
})

t.test('greedy: argmax, lowest index on ties, NaN never wins', async (t) => {
  const greedy = sampler({ doSample: false }, 5)
  t.equal(greedy.select(row([0.1, 3, -2, 3, 1]), 0, []).tokenId, 1)
  t.equal(greedy.select(row([Number.NaN, 1, 2, Number.NaN, 2]), 0, []).tokenId, 2)
  t.equal(sampler({ doSample: false }, 3).select(row([5, 5, 5]), 0, []).tokenId, 0)
  t.throws(() => greedy.select(row([Number.NaN, Number.NaN, Number.NaN, Number.NaN, Number.NaN]), 0, []), /no finite/)
  t.equal(sampler({ temperature: 0 }, 5).select(row([0, 1, 9, 2, 9]), 0, []).tokenId, 2, 'temperature 0 is greedy')
})

t.test('greedy limits: temperature → 0, top_k = 1, tiny top_p', async (t) => {
  fc.assert(
    fc.property(logitsArb(2, 60), fc.nat(MAX_SEED), (values, seed) => {
      const logits = row(values)
      const best = sampler({ doSample: false }, values.length).select(logits, 0, []).tokenId
      const sorted = [...logits].sort((a, b) => b - a)
      const topK1 = sampler({ topK: 1, seed }, values.length).select(logits, 0, []).tokenId
      const tinyP = sampler({ topP: 1e-9, seed }, values.length).select(logits, 0, []).tokenId
      const ok = logits[topK1] === sorted[0] && logits[tinyP] === sorted[0]
      // A clear winner makes the low-temperature limit exact in practice.
      if (sorted[0] - sorted[1] < 0.01) return ok
      return ok && topK1 === best && sampler({ temperature: 1e-5, seed }, values.length).select(logits, 0, []).tokenId === best
    }),
  )
  t.equal(sampler({ temperature: 1e-320 }, 3).select(row([1, 2, 1.5]), 0, []).tokenId, 1, '1/T overflow is greedy')
})

t.test('sampled tokens stay inside the top-k set and the top-p nucleus', async (t) => {
  fc.assert(
    fc.property(
      logitsArb(1, 120),
      fc.integer({ min: 0, max: 10 }),
      fc.double({ min: 0.01, max: 1, noNaN: true }),
      fc.double({ min: 0.2, max: 3, noNaN: true }),
      fc.nat(MAX_SEED),
      (values, topK, topP, temperature, seed) => {
        const logits = row(values)
        const allowed = allowedIds(logits, temperature, topK, topP)
        const s = sampler({ topK, topP, temperature, seed }, values.length)
        for (let i = 0; i < 20; i++) if (!allowed.has(s.select(logits, 0, []).tokenId)) return false
        return true
      },
    ),
    { numRuns: 300 },
  )

  // transformers drops only scores strictly below the k-th largest: ties with it stay.
  const tied = row([3, 1, 1, 1, 0])
  const s = sampler({ topK: 2, temperature: 0.5, seed: 1 }, 5)
  const seen = new Set<number>()
  for (let i = 0; i < 3000; i++) seen.add(s.select(tied, 0, []).tokenId)
  t.same([...seen].sort(), [0, 1, 2, 3], 'all three tied with the 2nd largest can be drawn, never token 4')
})

t.test('a nucleus of thousands of tokens in a 32k vocabulary', async (t) => {
  const vocab = 32000
  const rng = new SeededRandom(3)
  const logits = new Float32Array(vocab)
  for (let i = 0; i < vocab; i++) logits[i] = rng.nextFloat() * 4 // flat: the 0.9 nucleus holds thousands
  const allowed = allowedIds(logits, 1, 0, 0.9)
  t.ok(allowed.size > 1000, `nucleus of ${allowed.size}`)
  const s = sampler({ topP: 0.9, seed: 5 }, vocab)
  const seen = new Set<number>()
  const outside: number[] = []
  for (let i = 0; i < 300; i++) {
    const id = s.select(logits, 0, []).tokenId
    if (!allowed.has(id)) outside.push(id)
    seen.add(id)
  }
  t.same(outside, [], 'every draw inside the nucleus')
  t.ok(seen.size > 200, 'draws spread over the nucleus')
})

t.test('seeds: same seed ⇒ same tokens, whatever else is drawn; different seeds differ', async (t) => {
  const logits = row(Array.from({ length: 100 }, (_, i) => Math.sin(i) * 2))
  const run = (seed: number, interleave: boolean) => {
    const s = sampler({ seed, temperature: 0.9, topP: 0.95 }, 100)
    const other = sampler({ seed: seed + 1 }, 100)
    return Array.from({ length: 50 }, () => {
      if (interleave) other.select(logits, 0, [])
      return s.select(logits, 0, []).tokenId
    })
  }
  t.same(run(1234, true), run(1234, false), 'a batch neighbour does not change the stream')
  t.not(run(1234, false).join(), run(1235, false).join())
})

t.test('empirical frequencies match softmax(logits / T) after top-k and top-p', async (t) => {
  const values = [1.2, -0.3, 0.4, 2.0, -1.5, 0.0, 0.9, -0.7, 1.6, 0.2, -2.5, 0.6]
  const logits = row(values)
  const cases = [
    { temperature: 0.7, topK: 0, topP: 1 },
    { temperature: 1.3, topK: 6, topP: 1 },
    { temperature: 1, topK: 8, topP: 0.8 },
  ]
  for (const c of cases) {
    const allowed = allowedIds(logits, c.temperature, c.topK, c.topP)
    const probs = softmax(logits, c.temperature)
    const mass = [...allowed].reduce((s, i) => s + probs[i], 0)
    const n = 100_000
    const counts = new Array<number>(values.length).fill(0)
    const s = sampler({ ...c, seed: 99 }, values.length)
    for (let i = 0; i < n; i++) counts[s.select(logits, 0, []).tokenId]++
    let chi2 = 0
    for (let i = 0; i < values.length; i++) {
      if (!allowed.has(i)) {
        t.equal(counts[i], 0, `token ${i} filtered out`)
        continue
      }
      const expected = (n * probs[i]) / mass
      chi2 += (counts[i] - expected) ** 2 / expected
    }
    // df ≤ 11: mean ≤ 11, P(chi2 > 40) < 1e-4. The seed is fixed, so this is not flaky.
    t.ok(chi2 < 40, `chi-square ${chi2.toFixed(2)} for ${JSON.stringify(c)}`)
  }
})

t.test('repetition penalty (CTRL): lowers repeated tokens, once per distinct token, greedy too', async (t) => {
  const logits = row([2.0, 1.9, -1.0, 0.5])
  t.equal(sampler({ doSample: false }, 4).select(logits, 0, [0]).tokenId, 0)
  t.equal(sampler({ doSample: false, repetitionPenalty: 1.2 }, 4).select(logits, 0, [0]).tokenId, 1, '2.0/1.2 < 1.9')
  // A negative logit is multiplied: -1 * 3 = -3, so token 2 loses to token 3 only when penalized.
  const neg = row([-5, -5, -1, -2])
  t.equal(sampler({ doSample: false, repetitionPenalty: 3 }, 4).select(neg, 0, [2]).tokenId, 3)
  t.equal(sampler({ doSample: false, repetitionPenalty: 3 }, 4).select(neg, 0, [9, -1]).tokenId, 2, 'out-of-range ids ignored')

  const frequency = (penalty: number, previous: number[]) => {
    const s = sampler({ repetitionPenalty: penalty, seed: 5 }, 4)
    let hits = 0
    const draws: number[] = []
    for (let i = 0; i < 20_000; i++) {
      const id = s.select(logits, 0, previous).tokenId
      draws.push(id)
      if (id === 0) hits++
    }
    return { share: hits / 20_000, draws }
  }
  const plain = frequency(1, [0])
  const penalized = frequency(1.5, [0])
  t.ok(penalized.share < plain.share - 0.1, `share of token 0: ${plain.share} → ${penalized.share}`)
  const p = softmax([2 / 1.5, 1.9, -1, 0.5])[0]
  t.ok(Math.abs(penalized.share - p) < 0.015, `share ${penalized.share} ≈ ${p}`)
  t.same(frequency(1.5, [0, 0, 0]).draws, penalized.draws, 'a token seen thrice is penalized once')
})

t.test('logprob is the raw log-softmax, whatever the sampling settings', async (t) => {
  const vocab = 32000
  const rng = new SeededRandom(11)
  const logits = new Float32Array(vocab)
  for (let i = 0; i < vocab; i++) logits[i] = (rng.nextFloat() - 0.5) * 30
  let max = -Infinity
  for (const x of logits) max = Math.max(max, x)
  let sum = 0
  for (const x of logits) sum += Math.exp(x - max)
  const reference = (id: number) => logits[id] - max - Math.log(sum)
  const settings: Partial<SamplingParams>[] = [
    { doSample: false },
    { doSample: false, repetitionPenalty: 1.3 },
    { temperature: 1 },
    { temperature: 0.5, topK: 40 },
    { temperature: 1, topP: 0.9, repetitionPenalty: 0.8 },
  ]
  for (const p of settings) {
    const s = sampler(p, vocab)
    for (let i = 0; i < 5; i++) {
      const { tokenId, logprob } = s.select(logits, 0, [1, 2, 3])
      t.ok(Math.abs(logprob - reference(tokenId)) < 1e-9, `${JSON.stringify(p)}: ${logprob} vs ${reference(tokenId)}`)
    }
  }
  const off = new TokenSampler(base, vocab, { logprobs: false }).select(logits, 0, [])
  t.ok(Number.isNaN(off.logprob), 'skipped on request')
})

t.test('reads one row of a multi-row batch at its offset', async (t) => {
  const vocab = 7
  const batch = new Float32Array(vocab * 3).fill(-1)
  batch[0 * vocab + 4] = 5
  batch[1 * vocab + 2] = 5
  batch[2 * vocab + 6] = 5
  const s = sampler({ doSample: false }, vocab)
  t.same([0, 1, 2].map((r) => s.select(batch, r * vocab, []).tokenId), [4, 2, 6])
  const sampled = sampler({ topK: 1 }, vocab)
  t.equal(sampled.select(batch, 2 * vocab, []).tokenId, 6)
  const lp = s.select(batch, vocab, []).logprob
  t.ok(Math.abs(lp - (5 - 5 - Math.log(1 + 6 * Math.exp(-6)))) < 1e-9, 'logprob from the row only')
  t.throws(() => s.select(batch, 2 * vocab + 1, []), RangeError)
  t.throws(() => s.select(batch, -1, []), RangeError)
})

t.test('normalizeSamplingParams: TGI defaults, explicit do_sample wins, range errors name the field', async (t) => {
  const d = normalizeSamplingParams({ seed: 3 })
  t.same(d, { doSample: false, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 3 })
  t.ok(Number.isSafeInteger(normalizeSamplingParams({}).seed), 'a seed is drawn when none is given')
  t.equal(normalizeSamplingParams({ temperature: 0.7 }).doSample, true)
  t.equal(normalizeSamplingParams({ temperature: 1 }).doSample, false)
  t.equal(normalizeSamplingParams({ topK: 5 }).doSample, true)
  t.equal(normalizeSamplingParams({ topP: 0.9 }).doSample, true)
  t.equal(normalizeSamplingParams({ topP: 0.9, doSample: false }).doSample, false)
  t.equal(normalizeSamplingParams({ doSample: true }).doSample, true)
  const bad: [Partial<SamplingParams>, RegExp][] = [
    [{ temperature: -0.1 }, /^temperature/],
    [{ temperature: Number.NaN }, /^temperature/],
    [{ topP: 0 }, /^topP/],
    [{ topP: 1.01 }, /^topP/],
    [{ topK: -1 }, /^topK/],
    [{ topK: 2.5 }, /^topK/],
    [{ repetitionPenalty: 0 }, /^repetitionPenalty/],
    [{ seed: -3 }, /^seed/],
  ]
  for (const [input, message] of bad) {
    t.throws(() => normalizeSamplingParams(input), { name: 'RangeError', message }, JSON.stringify(input))
  }
  t.throws(() => new TokenSampler(base, 0), RangeError)
})
