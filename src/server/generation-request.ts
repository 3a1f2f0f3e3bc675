/**
 * What a client asks the generation service for, in prefixd's own words: the
 * one request every front end (TGI's /generate, OpenAI's /v1) translates its
 * body into. The service validates it once and turns it into the engine's
 * request, as TGI's validate() turns a body into the one request its queue
 * holds; nothing changes it afterwards.
 */
import type { SamplingParamsInput } from '../engine/sampling/sampling-params.js'
import { ValidationError } from '../errors.js'

export interface GenerationRequest {
  /** The prompt text. */
  inputs: string
  /** Prefix ids composed in this order; empty for the base model. */
  prefixIds: string[]
  /** Most tokens to generate; null for the server's DEFAULT_MAX_NEW_TOKENS. */
  maxNewTokens: number | null
  stop: string[]
  /** As the client gave them; defaults and range checks come with validation. */
  sampling: SamplingParamsInput
  /**
   * What the answer reports of log probabilities; null for nothing. Each
   * costs a log-sum-exp over the vocabulary per token, so a front end asks
   * only for what its client will see.
   */
  logprobs: LogprobRequest | null
}

/** What log probabilities a request asks for. */
export interface LogprobRequest {
  /** Alternatives per token (OpenAI's top logprobs), 0 for the chosen token's alone. */
  top: number
  /** Score the prompt's tokens too (completions' echo). */
  prompt: boolean
}

/** The chosen token's logprob alone: what TGI's answers show. */
export const CHOSEN_TOKEN_LOGPROBS: LogprobRequest = { top: 0, prompt: false }

/** The fields of a GenerationRequest that validation refuses by name. */
export type RequestField = 'inputs' | 'stop'

/**
 * A 422 that says which request field it is about, so that a front end can
 * name the field as its own clients spell it (OpenAI's `param`).
 */
export function invalidField(field: RequestField, message: string): Error {
  return Object.assign(new ValidationError(message), { field })
}

/** The request field a validation error is about, if it says. */
export function fieldOf(err: unknown): RequestField | undefined {
  const field = (err as { field?: unknown } | null)?.field
  return field === 'inputs' || field === 'stop' ? field : undefined
}

/** One id, ids joined by '+' (a pair, e.g. a prefix and a LoRA, in one string; '+' is never part of an id), or a list. */
export function adapterIdList(ref: string | string[] | null | undefined): string[] | null {
  if (ref === null || ref === undefined) return null
  return Array.isArray(ref) ? ref : ref.split('+')
}
