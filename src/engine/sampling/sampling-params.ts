/**
 * The knobs of token selection, with Hugging Face TGI's defaults and meaning.
 * The HTTP layer validates request bodies first and answers 422; the checks
 * here are the engine's own guard and throw a plain RangeError naming the field.
 */
import { assertValidSeed, randomSeed } from './rng.js'

export interface SamplingParams {
  /** false: greedy (argmax). true: sample from the processed distribution. */
  doSample: boolean
  /** > 0 scales logits by 1/T when sampling; 0 means greedy; 1 = off. */
  temperature: number
  /** Keep only the k most likely tokens (ties with the k-th kept, as in transformers); 0 = off. */
  topK: number
  /** Keep the smallest set of most likely tokens whose probability sums to >= topP; 1 = off. */
  topP: number
  /** CTRL-style penalty on tokens already seen (applies to greedy too); 1 = off. */
  repetitionPenalty: number
  /** Seed of this request's own generator; reported back to the client. */
  seed: number
}

export type SamplingParamsInput = Partial<SamplingParams>

/**
 * Fills defaults and validates. `doSample` defaults the way TGI decides it:
 * sampling is on when any warper is active (temperature != 1, topK > 0,
 * topP < 1). An explicit `doSample` always wins; that differs from TGI's
 * server, which ORs the two, and matches transformers' `generate`.
 */
export function normalizeSamplingParams(input: SamplingParamsInput): SamplingParams {
  const temperature = input.temperature ?? 1
  const topK = input.topK ?? 0
  const topP = input.topP ?? 1
  const params: SamplingParams = {
    doSample: input.doSample ?? (temperature !== 1 || topK > 0 || topP < 1),
    temperature,
    topK,
    topP,
    repetitionPenalty: input.repetitionPenalty ?? 1,
    seed: input.seed ?? randomSeed(),
  }
  assertSamplingParams(params)
  return params
}

/** Throws a RangeError naming the first out-of-range field. */
export function assertSamplingParams(params: SamplingParams): void {
  const { doSample, temperature, topK, topP, repetitionPenalty, seed } = params
  if (typeof doSample !== 'boolean') {
    throw new RangeError(`doSample must be a boolean, got ${String(doSample)}`)
  }
  if (!(Number.isFinite(temperature) && temperature >= 0)) {
    throw new RangeError(`temperature must be a finite number >= 0, got ${temperature}`)
  }
  if (!(Number.isSafeInteger(topK) && topK >= 0)) {
    throw new RangeError(`topK must be an integer >= 0, got ${topK}`)
  }
  if (!(topP > 0 && topP <= 1)) {
    throw new RangeError(`topP must be in (0, 1], got ${topP}`)
  }
  if (!(Number.isFinite(repetitionPenalty) && repetitionPenalty > 0)) {
    throw new RangeError(`repetitionPenalty must be a finite number > 0, got ${repetitionPenalty}`)
  }
  assertValidSeed(seed)
}
