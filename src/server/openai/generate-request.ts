/**
 * From an OpenAI request to what the generation service runs: the model name
 * picks the prefix, temperature 0 means greedy, and `n` choices are the same
 * prepared request with seeds seed, seed + 1, ... (so they are independent
 * samples, and identical when greedy).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { PreparedRequest } from '../generation-service.js'
import type { GenerateBodyT } from '../schemas/generate.js'
import type { ChatBodyT, CompletionBodyT } from '../schemas/openai.js'
import { OpenAIRequestError } from './errors.js'

type SamplingBody = Pick<CompletionBodyT & ChatBodyT, 'model' | 'temperature' | 'top_p' | 'stop' | 'seed'>

export function stopList(stop: string | string[] | null | undefined): string[] {
  if (stop == null) return []
  return typeof stop === 'string' ? [stop] : stop
}

/** The TGI-shaped body the generation service validates and prepares. */
export function toGenerateBody(app: FastifyInstance, body: SamplingBody, inputs: string, maxTokens: number | null): GenerateBodyT {
  const greedy = body.temperature === 0
  const stop = stopList(body.stop)
  // TGI's limit (MAX_STOP_SEQUENCES), checked here to name the field as OpenAI clients know it.
  const limit = app.config.MAX_STOP_SEQUENCES
  if (stop.length > limit) throw new OpenAIRequestError(`stop has ${stop.length} sequences; the limit is ${limit}`, 'stop', 'validation')
  const parameters: NonNullable<GenerateBodyT['parameters']> = {
    max_new_tokens: maxTokens,
    stop,
    do_sample: !greedy,
    seed: body.seed ?? null,
  }
  // The base model's own name means no prefix (the vLLM and LoRAX convention).
  if (body.model !== app.modelId) parameters.prefix_id = body.model
  if (!greedy) {
    parameters.temperature = body.temperature ?? 1
    if (body.top_p != null && body.top_p < 1) parameters.top_p = body.top_p
  }
  return { inputs, parameters }
}

/** What log probabilities a request asks for; null for none. */
export interface LogprobRequest {
  /** Alternatives per token (OpenAI's top logprobs), 0 for the chosen token's alone. */
  top: number
  /** Score the prompt's tokens too (completions' echo). */
  prompt: boolean
}

/**
 * Prepares the request once and derives the n choices from it. The caller's
 * identity reaches the generation service here, and only here, for every /v1 route.
 */
export async function prepareChoices(
  app: FastifyInstance,
  request: FastifyRequest,
  body: GenerateBodyT,
  n: number,
  logprobs: LogprobRequest | null,
): Promise<PreparedRequest[]> {
  const first = await app.generation.prepare(body, request.principal)
  // A logprob costs a log-sum-exp over the vocabulary per token: only when asked for.
  first.params.logprobs = logprobs !== null
  if (logprobs !== null) {
    first.params.topLogprobs = logprobs.top
    first.params.promptLogprobs = logprobs.prompt
  }
  return Array.from({ length: n }, (_, i) =>
    i === 0 ? first : { ...first, params: { ...first.params, seed: (first.params.seed + i) % Number.MAX_SAFE_INTEGER } },
  )
}

/** OpenAI's finish reasons: the end of text and a stop sequence are both "stop". */
export function finishReason(reason: string): 'stop' | 'length' {
  return reason === 'length' ? 'length' : 'stop'
}

export const nowSeconds = () => Math.floor(Date.now() / 1000)
