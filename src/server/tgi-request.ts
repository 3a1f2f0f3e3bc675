/**
 * TGI's request body (/generate, /generate_stream) in prefixd's words: which
 * prefixes it names (`prefix_id`, or LoRAX's `adapter_id`), and TGI's rule
 * that any active sampling warper turns sampling on.
 */
import { ValidationError } from '../errors.js'
import { adapterIdList, CHOSEN_TOKEN_LOGPROBS, type GenerationRequest } from './generation-request.js'
import type { GenerateBodyT } from './schemas/generate.js'

type Parameters = NonNullable<GenerateBodyT['parameters']>

function prefixIds(p: Parameters): string[] {
  const a = adapterIdList(p.prefix_id)
  const b = adapterIdList(p.adapter_id)
  if (a !== null && b !== null && JSON.stringify(a) !== JSON.stringify(b)) {
    throw new ValidationError('parameters.prefix_id and parameters.adapter_id name different prefixes; give one')
  }
  return a ?? b ?? []
}

/** `logprobs`: whether the answer shows token logprobs (every streamed event does; /generate only with details). */
export function fromGenerateBody(body: GenerateBodyT, logprobs: boolean): GenerationRequest {
  const p: Parameters = body.parameters ?? {}
  // As TGI: any active warper turns sampling on, whatever do_sample says.
  const warpers = (p.temperature != null && p.temperature !== 1) || p.top_k != null || (p.top_p != null && p.top_p < 1)
  return {
    inputs: body.inputs,
    prefixIds: prefixIds(p),
    maxNewTokens: p.max_new_tokens ?? null,
    stop: p.stop ?? [],
    sampling: {
      doSample: (p.do_sample ?? false) || warpers,
      temperature: p.temperature ?? undefined,
      topK: p.top_k ?? undefined,
      topP: p.top_p ?? undefined,
      repetitionPenalty: p.repetition_penalty ?? undefined,
      seed: p.seed ?? undefined,
    },
    logprobs: logprobs ? CHOSEN_TOKEN_LOGPROBS : null,
  }
}
