/**
 * Chooses the next token of one request from one row of the batch's logits.
 * Runs once per generated token per request on the engine worker, so it reads
 * the row in place, reuses scratch buffers allocated once per request, and
 * never sorts the vocabulary.
 *
 * Order of operations is that of Hugging Face transformers' logits processors
 * (and TGI's NextTokenChooser): repetition penalty (greedy too), then, only when
 * sampling, temperature → top-k → top-p, then a draw from the renormalized
 * distribution with this request's own seeded generator.
 */
import { sumExpShifted, writeExpWeights, expNonPositive } from './fast-exp.js'
import { SeededRandom } from './rng.js'
import { assertSamplingParams, type SamplingParams } from './sampling-params.js'
import { NucleusFinder } from './nucleus.js'
import { collectTopK } from './top-selection.js'
import { topLogprobs, type TokenLogprob } from './token-logprobs.js'

export { normalizeSamplingParams, assertSamplingParams } from './sampling-params.js'
export type { SamplingParams, SamplingParamsInput } from './sampling-params.js'

export interface TokenChoice {
  tokenId: number
  /**
   * log-softmax of the chosen token under the model's raw distribution: the
   * unmodified logits, before repetition penalty, temperature, top-k and top-p.
   * That makes it a property of the model and the text alone, comparable across
   * requests with different sampling settings (vLLM's default "raw_logprobs").
   * TGI differs: it reports log_softmax of the penalized and warped scores.
   * NaN when the sampler was built with `{ logprobs: false }`.
   */
  logprob: number
  /** The most likely tokens under the same raw distribution, when asked for (`topLogprobs`). */
  top?: TokenLogprob[]
}

/**
 * The greedy pick the model graph made for a row (graph/greedy-pick.ts): its
 * argmax and that token's raw log-softmax; the logprob is not finite when the
 * row has a NaN or no finite maximum, and the pick is then not to be used.
 */
export interface GraphPick {
  tokenId: number
  logprob: number
}

export interface TokenSamplerOptions {
  /**
   * Compute `logprob` (default true). It needs a log-sum-exp over the whole
   * vocabulary, ~230 µs per row for 32k tokens on a slow core, which is several
   * times the cost of a greedy pick; callers that never report it can skip it.
   */
  logprobs?: boolean
  /** Also list this many most likely tokens with their logprobs (needs `logprobs`; default 0). */
  topLogprobs?: number
}

/** The model's output row cannot be sampled: every logit is NaN, or one is +Infinity. */
export class NonFiniteLogitsError extends Error {
  override readonly name = 'NonFiniteLogitsError'
}

export class TokenSampler {
  readonly params: Readonly<SamplingParams>
  readonly vocabSize: number
  private readonly rng: SeededRandom
  private readonly greedy: boolean
  private readonly invTemperature: number
  private readonly wantLogprob: boolean
  private readonly topCount: number
  /** The row after repetition penalty (float64, so logit/T cannot overflow). */
  private readonly scores: Float64Array
  /** Unnormalized probabilities e^((score - max) / T), indexed by token id. */
  private readonly weights: Float64Array
  /** Candidate token ids for top-k / top-p selection. */
  private readonly ids: Int32Array
  /** Min-heap scratch for top-k. */
  private readonly topKHeap: Int32Array
  /** Top-p boundary search over ids/weights; null when top-p is off. */
  private readonly nucleus: NucleusFinder | null
  /** Σ e^(raw - rawMax) when a sampling pass happened to compute it (T = 1, no penalty); else NaN. */
  private rawSumFromWeights = Number.NaN

  constructor(params: SamplingParams, vocabSize: number, options: TokenSamplerOptions = {}) {
    assertSamplingParams(params)
    if (!(Number.isSafeInteger(vocabSize) && vocabSize > 0)) {
      throw new RangeError(`vocabSize must be a positive integer, got ${vocabSize}`)
    }
    this.params = { ...params }
    this.vocabSize = vocabSize
    this.rng = new SeededRandom(params.seed)
    this.invTemperature = params.temperature > 0 ? 1 / params.temperature : Number.POSITIVE_INFINITY
    // Temperature 0 is the greedy limit; so is one so small that 1/T overflows.
    this.greedy = !params.doSample || !Number.isFinite(this.invTemperature)
    this.wantLogprob = options.logprobs ?? true
    this.topCount = this.wantLogprob ? (options.topLogprobs ?? 0) : 0
    this.scores = new Float64Array(vocabSize)
    this.weights = new Float64Array(this.greedy ? 0 : vocabSize)
    this.ids = new Int32Array(this.greedy ? 0 : vocabSize)
    this.topKHeap = new Int32Array(this.greedy || params.topK >= vocabSize ? 0 : params.topK)
    this.nucleus =
      this.greedy || params.topP >= 1
        ? null
        : new NucleusFinder(this.ids, this.weights, this.scores, params.topP, this.invTemperature)
  }

  get seed(): number {
    return this.params.seed
  }

  /**
   * Whether this sampler's choice is exactly the graph's greedy pick: greedy,
   * no repetition penalty, no alternatives to list. Such a row needs no
   * logits in JavaScript.
   */
  get takesGraphPick(): boolean {
    return this.greedy && this.params.repetitionPenalty === 1 && this.topCount === 0
  }

  /**
   * The graph's pick as this sampler's choice, when it is exactly what
   * select() would choose from the same logits: this sampler takes graph
   * picks and the pick is sound (a finite logprob). Otherwise null: choose
   * from the logits.
   */
  fromGraphPick(pick: GraphPick): TokenChoice | null {
    if (!this.takesGraphPick || !Number.isFinite(pick.logprob)) return null
    return { tokenId: pick.tokenId, logprob: this.wantLogprob ? pick.logprob : Number.NaN }
  }

  /**
   * Picks the next token from logits[offset, offset + vocabSize).
   * `previousTokens` are the ids the repetition penalty applies to; transformers
   * and TGI pass the whole sequence, prompt included.
   * NaN logits count as -Infinity; a row with no finite logit (or a +Infinity)
   * is a broken model output and throws.
   */
  select(logits: Float32Array, offset: number, previousTokens: readonly number[]): TokenChoice {
    const vocabSize = this.vocabSize
    if (!(Number.isSafeInteger(offset) && offset >= 0 && offset + vocabSize <= logits.length)) {
      throw new RangeError(`offset ${offset} + vocabSize ${vocabSize} is outside logits of length ${logits.length}`)
    }
    const penalty = this.params.repetitionPenalty
    const penalize = penalty !== 1 && previousTokens.length > 0
    const copyRow = penalize || !this.greedy
    const scores = this.scores

    let rawMax = Number.NEGATIVE_INFINITY
    let rawArgmax = 0
    if (copyRow) {
      for (let i = 0; i < vocabSize; i++) {
        let x = logits[offset + i]
        if (x !== x) x = Number.NEGATIVE_INFINITY
        if (x > rawMax) {
          rawMax = x
          rawArgmax = i
        }
        scores[i] = x
      }
    } else {
      // The plain greedy pick, once per row per step: the loop does nothing else
      // (about half the time of the one above). A NaN never compares greater,
      // so it counts as -Infinity here too.
      const end = offset + vocabSize
      for (let i = offset; i < end; i++) {
        const x = logits[i]
        if (x > rawMax) {
          rawMax = x
          rawArgmax = i
        }
      }
      rawArgmax -= offset
    }
    if (!(rawMax > Number.NEGATIVE_INFINITY && rawMax < Number.POSITIVE_INFINITY)) {
      throw new NonFiniteLogitsError(`logits row at offset ${offset} has no finite maximum (${rawMax})`)
    }

    if (penalize) {
      // Computed from the raw logit, so a token listed twice is penalized once,
      // as transformers' gather/scatter does.
      for (let p = 0; p < previousTokens.length; p++) {
        const t = previousTokens[p]
        if (!(t >= 0 && t < vocabSize)) continue
        const x = logits[offset + t]
        if (x !== x) continue // stays -Infinity
        scores[t] = x < 0 ? x * penalty : x / penalty
      }
    }

    this.rawSumFromWeights = Number.NaN
    let tokenId: number
    if (!this.greedy) tokenId = this.sample(penalize ? maxOf(scores, vocabSize) : rawMax, !penalize)
    else tokenId = penalize ? argmaxOf(scores, vocabSize) : rawArgmax

    let logprob = Number.NaN
    let top: TokenLogprob[] | undefined
    if (this.wantLogprob) {
      const rawSum = Number.isNaN(this.rawSumFromWeights)
        ? sumExpShifted(logits, offset, vocabSize, rawMax)
        : this.rawSumFromWeights
      const chosen = logits[offset + tokenId]
      const normalizer = rawMax + Math.log(rawSum)
      logprob = chosen !== chosen ? Number.NEGATIVE_INFINITY : chosen - normalizer
      if (this.topCount > 0) top = topLogprobs(logits, offset, vocabSize, this.topCount, normalizer)
    }
    return top === undefined ? { tokenId, logprob } : { tokenId, logprob, top }
  }

  /** Temperature → top-k → top-p → draw. `max` is the largest score; `scoresAreRaw` when no penalty changed them. */
  private sample(max: number, scoresAreRaw: boolean): number {
    const { topK, topP } = this.params
    const vocabSize = this.vocabSize
    const { scores, weights, ids } = this
    const invT = this.invTemperature

    if (topK > 0 && topK < vocabSize) {
      const count = collectTopK(scores, vocabSize, topK, this.topKHeap, ids)
      let total = 0
      for (let j = 0; j < count; j++) {
        const id = ids[j]
        const w = expNonPositive((scores[id] - max) * invT)
        weights[id] = w
        total += w
      }
      return this.draw(this.nucleus ? this.nucleus.size(count, total, max) : count)
    }

    const total = writeExpWeights(scores, weights, vocabSize, max, invT)
    if (scoresAreRaw && invT === 1) this.rawSumFromWeights = total
    if (this.nucleus === null) return this.drawFromWholeVocabulary(total)

    // Tokens lighter than total·(1-topP)/n weigh less than total·(1-topP)
    // together, so the nucleus never needs them; one cheap pass drops the long tail.
    const cutoff = (total * (1 - topP)) / vocabSize
    let count = 0
    for (let i = 0; i < vocabSize; i++) if (weights[i] >= cutoff) ids[count++] = i
    return this.draw(this.nucleus.size(count, total, max))
  }

  /** Draws among ids[0, count) in proportion to their weights. */
  private draw(count: number): number {
    const { ids, weights } = this
    let mass = 0
    for (let j = 0; j < count; j++) mass += weights[ids[j]]
    const u = this.rng.nextFloat() * mass
    let cumulative = 0
    let lastPositive = ids[0]
    for (let j = 0; j < count; j++) {
      const w = weights[ids[j]]
      if (w > 0) {
        cumulative += w
        lastPositive = ids[j]
        if (u < cumulative) return lastPositive
      }
    }
    // Only reachable if u·mass rounded up to mass.
    return lastPositive
  }

  private drawFromWholeVocabulary(total: number): number {
    const weights = this.weights
    const u = this.rng.nextFloat() * total
    let cumulative = 0
    let lastPositive = 0
    for (let i = 0; i < this.vocabSize; i++) {
      const w = weights[i]
      if (w > 0) {
        cumulative += w
        lastPositive = i
        if (u < cumulative) return i
      }
    }
    return lastPositive
  }
}

function maxOf(values: Float64Array, length: number): number {
  let max = Number.NEGATIVE_INFINITY
  for (let i = 0; i < length; i++) if (values[i] > max) max = values[i]
  return max
}

/** Index of the largest value, the lowest index on ties (-Infinity entries lose to any finite one). */
function argmaxOf(values: Float64Array, length: number): number {
  let best = 0
  let max = values[0]
  for (let i = 1; i < length; i++) {
    if (values[i] > max) {
      max = values[i]
      best = i
    }
  }
  return best
}
