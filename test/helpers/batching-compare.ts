/**
 * Compares what a request got inside a batch with what it gets alone, and
 * checks the finish rules every outcome must obey. Returns readable
 * differences (empty when all is well) so a failing property can say exactly
 * which request, which token, and by how much.
 */
import type { Outcome, RequestCase } from './batching-requests.js'

/** The batched and the alone run take different kernels' paths; logprobs may differ in the last bits. */
export const LOGPROB_TOLERANCE = 1e-4

export function describeRequest(req: RequestCase): string {
  const prefix = req.prefixKeys.length > 0 ? req.prefixKeys.join('+') : 'no prefix'
  const mode = req.sampling ? `sampled seed ${req.sampling.seed}` : 'greedy'
  const cancel = req.cancelAfter === undefined ? '' : `, cancelled after ${req.cancelAfter}`
  return `[${prefix}, prompt ${req.promptIds.length} tokens, max_new ${req.maxNewTokens}, after ${req.arrivalAfter}${cancel}, ${mode}]`
}

export function outcomeDifferences(label: string, batched: Outcome, alone: Outcome, tolerance = LOGPROB_TOLERANCE): string[] {
  const out: string[] = []
  const n = Math.min(batched.ids.length, alone.ids.length)
  let firstDiff = -1
  for (let i = 0; i < n && firstDiff < 0; i++) if (batched.ids[i] !== alone.ids[i]) firstDiff = i
  if (firstDiff >= 0) {
    out.push(
      `${label}: token ${firstDiff} is ${batched.ids[firstDiff]} (logprob ${batched.logprobs[firstDiff]}) batched ` +
        `but ${alone.ids[firstDiff]} (logprob ${alone.logprobs[firstDiff]}) alone`,
    )
  } else if (batched.reason === 'cancelled' && batched.ids.length <= alone.ids.length) {
    // Cancelled in the batch: what it got so far must be the start of its alone run.
  } else if (batched.ids.length !== alone.ids.length) {
    out.push(`${label}: ${batched.ids.length} tokens batched (${batched.reason}) but ${alone.ids.length} alone (${alone.reason})`)
  }
  const upTo = firstDiff >= 0 ? firstDiff : n
  out.push(...logprobDifferences(label, batched.logprobs.slice(0, upTo), alone.logprobs.slice(0, upTo), tolerance))
  if (out.length === 0 && batched.reason !== 'cancelled') {
    if (batched.reason !== alone.reason) out.push(`${label}: finish ${batched.reason} batched vs ${alone.reason} alone`)
    if (batched.text !== alone.text) out.push(`${label}: text ${JSON.stringify(batched.text)} batched vs ${JSON.stringify(alone.text)} alone`)
  }
  return out
}

/** The first token whose logprobs differ by more than the tolerance (over the shorter list). */
export function logprobDifferences(label: string, got: readonly number[], want: readonly number[], tolerance = LOGPROB_TOLERANCE): string[] {
  for (let i = 0; i < Math.min(got.length, want.length); i++) {
    const d = Math.abs(got[i] - want[i])
    if (!(d <= tolerance)) return [`${label}: logprob of token ${i} is ${got[i]} vs ${want[i]} (|diff| ${d})`]
  }
  return []
}

/** The rules that end a request, checked on any outcome. */
export function finishRuleViolations(label: string, req: RequestCase, o: Outcome, eosIds: readonly number[]): string[] {
  const out: string[] = []
  const count = o.ids.length
  if (count < 1 || count > req.maxNewTokens) out.push(`${label}: ${count} tokens for max_new_tokens ${req.maxNewTokens}`)
  const eosAt = o.ids.findIndex((id) => eosIds.includes(id))
  if (o.reason === 'length' && count !== req.maxNewTokens) out.push(`${label}: finish length after ${count} of ${req.maxNewTokens} tokens`)
  if (o.reason === 'eos_token' && eosAt !== count - 1) out.push(`${label}: finish eos_token but the first EOS is at ${eosAt} of ${count}`)
  if (o.reason !== 'eos_token' && eosAt >= 0) out.push(`${label}: EOS at token ${eosAt} did not end it (${o.reason})`)
  if ((req.stop ?? []).length === 0 && o.reason === 'stop_sequence') out.push(`${label}: stop_sequence without stop sequences`)
  if (o.pieces.join('') !== o.text) out.push(`${label}: streamed pieces do not add up to generated_text`)
  return out
}
