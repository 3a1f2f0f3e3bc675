/**
 * Does a request fit the model's positions? A decoder-only model puts prefix,
 * prompt and generated tokens in one sequence. An encoder-decoder model has
 * two: the source goes to the encoder, and the decoder holds the prefix,
 * decoder_start and the generated tokens (PEFT counts the prefix as earlier
 * decoder positions).
 */
import { architectureOf, type ModelSpec } from '../domain/model-spec.js'

/** A message naming the overflow, or null when the request fits. */
export function positionBudgetProblem(spec: ModelSpec, prefixLen: number, promptLen: number, maxNewTokens: number): string | null {
  const limit = spec.maxPositions
  if (architectureOf(spec) === 'encoder-decoder') {
    if (promptLen > limit) return `the source (${promptLen} tokens) exceeds the encoder's ${limit} positions`
    const decoder = prefixLen + 1 + maxNewTokens
    if (decoder > limit) {
      return `prefix (${prefixLen}) + decoder start (1) + max_new_tokens (${maxNewTokens}) = ${decoder} exceeds the decoder's ${limit} positions`
    }
    return null
  }
  const total = prefixLen + promptLen + maxNewTokens
  if (total <= limit) return null
  return `prefix (${prefixLen}) + prompt (${promptLen} tokens) + max_new_tokens (${maxNewTokens}) = ${total} exceeds the model's ${limit} positions`
}
