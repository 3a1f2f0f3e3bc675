/**
 * From an OpenAI request to what the generation service runs: the model name
 * picks the prefix, temperature 0 means greedy, and `n` choices are the same
 * prepared request with seeds seed, seed + 1, ... (so they are independent
 * samples, and identical when greedy).
 */
import type { FastifyInstance } from 'fastify'
import type { Principal } from '../../auth/api-keys.js'
import { adapterIdList, type GenerationRequest, type LogprobRequest } from '../generation-request.js'
import type { PreparedRequest } from '../generation-service.js'
import type { ChatBodyT, CompletionBodyT } from '../schemas/openai.js'

type SamplingBody = Pick<CompletionBodyT & ChatBodyT, 'model' | 'temperature' | 'top_p' | 'stop' | 'seed'>

export function stopList(stop: string | string[] | null | undefined): string[] {
  if (stop == null) return []
  return typeof stop === 'string' ? [stop] : stop
}

/** An OpenAI body as the generation service's request; `logprobs`: what the answer shows of them (null: none). */
export function toGenerationRequest(
  app: FastifyInstance,
  body: SamplingBody,
  inputs: string,
  maxTokens: number | null,
  logprobs: LogprobRequest | null,
): GenerationRequest {
  const greedy = body.temperature === 0
  const seed = body.seed ?? undefined
  const topP = body.top_p != null && body.top_p < 1 ? body.top_p : undefined
  return {
    inputs,
    // The base model's own name means no prefix (the vLLM and LoRAX convention).
    prefixIds: body.model === app.modelId ? [] : adapterIdList(body.model)!,
    maxNewTokens: maxTokens,
    stop: stopList(body.stop),
    // Temperature 0 is OpenAI's greedy; the other knobs only matter when sampling.
    sampling: greedy ? { doSample: false, seed } : { doSample: true, seed, temperature: body.temperature ?? 1, topP },
    logprobs,
  }
}

/**
 * Prepares the request once and derives the n choices from it. The caller's
 * identity reaches the generation service here, and only here, for every /v1 route.
 */
export async function prepareChoices(app: FastifyInstance, principal: Principal, generation: GenerationRequest, n: number): Promise<PreparedRequest[]> {
  const first = await app.generation.prepare(generation, principal)
  return Array.from({ length: n }, (_, i) =>
    i === 0 ? first : { ...first, params: { ...first.params, seed: (first.params.seed + i) % Number.MAX_SAFE_INTEGER } },
  )
}

/** OpenAI's finish reasons: the end of text and a stop sequence are both "stop". */
export function finishReason(reason: string): 'stop' | 'length' {
  return reason === 'length' ? 'length' : 'stop'
}

export const nowSeconds = () => Math.floor(Date.now() / 1000)
