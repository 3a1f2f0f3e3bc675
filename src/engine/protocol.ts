/**
 * Messages between the HTTP thread and the engine worker. Every message carries
 * the protocol version; request-scoped ones carry the request id; errors cross
 * as plain {code, statusCode, message} (structured clone drops Error classes).
 */
import type { FlatError } from '../domain/error-table.js'
import type { LoraProjection } from '../domain/lora-weights.js'
import type { ModelSpec } from '../domain/model-spec.js'
import type { AdapterContribution, ContributionKind } from '../domain/adapter-contribution.js'
import type { SamplingParams } from './sampling/sampling-params.js'
import type { SchedulerLimits } from './scheduler.js'

export const PROTOCOL_VERSION = 2

/** How the worker starts: the model, the runtime, and the scheduler's limits as they are. */
export interface EngineOptions extends SchedulerLimits {
  modelDir: string
  executionProvider: 'cpu' | 'cuda'
  intraOpThreads: number
  /** ORT_BINDING (absent: auto). */
  ortBinding?: 'auto' | 'capi' | 'node'
  /** LORA_TARGET_MODULES: 'peft', 'all', 'none' or comma-separated leaf module names (absent: peft). */
  loraTargetModules?: string
  /** ADMISSION_WAIT_MS: how long an idle loop waits after its first request for others (absent or 0: not at all). */
  admissionWaitMs?: number
}

/** Sampling settings plus what ends a request and whose it is. */
export interface GenerationParams extends SamplingParams {
  maxNewTokens: number
  stop: string[]
  /** Wall-clock time (ms since epoch) after which the request ends with an error. */
  deadline: number
  /** Whose request this is, for the scheduler's fair share (default: one shared tenant). */
  tenant?: string
  /**
   * Compute each token's logprob (default true). Where the row needs the
   * logits in JavaScript (sampling, penalties) it costs a log-sum-exp over the
   * whole vocabulary per token, so requests that never report it turn it off;
   * a plain greedy row gets it from the graph's greedy pick either way.
   */
  logprobs?: boolean
  /** With logprobs: also report this many most likely tokens per step (OpenAI's top logprobs; default 0). */
  topLogprobs?: number
  /** Score the prompt's tokens too (OpenAI's echo with logprobs): the first event carries them. */
  promptLogprobs?: boolean
}

export interface SubmitMessage {
  v: typeof PROTOCOL_VERSION
  type: 'submit'
  id: number
  promptIds: number[]
  /** Keys of adapters already sent with putAdapter, composed in this order. */
  adapterKeys: string[]
  params: GenerationParams
}

export type ToWorker =
  | SubmitMessage
  | { v: typeof PROTOCOL_VERSION; type: 'cancel'; id: number }
  | { v: typeof PROTOCOL_VERSION; type: 'putAdapter'; key: string; adapter: AdapterContribution }
  | { v: typeof PROTOCOL_VERSION; type: 'dropAdapter'; key: string }
  | { v: typeof PROTOCOL_VERSION; type: 'shutdown' }

export type FinishReason = 'length' | 'eos_token' | 'stop_sequence'

/** A token with the text it adds (as decoded after the ones before it) and its log probability. */
export interface ScoredToken {
  id: number
  text: string
  logprob: number
}

/** A prompt token: the first has no logprob (nothing precedes it to predict it). */
export interface PromptToken {
  id: number
  text: string
  logprob: number | null
  top?: ScoredToken[]
}

export interface TokenEvent {
  id: number
  token: { id: number; text: string; logprob: number; special: boolean; top?: ScoredToken[] }
  /** On the first token, when the request asked for promptLogprobs. */
  prompt?: PromptToken[]
  /** Present on the request's last token. */
  finish?: { reason: FinishReason; generatedText: string }
  /** On the first token: when the request entered the running batch (epoch ms). */
  admittedAt?: number
}

export interface EngineStats {
  running: number
  waiting: number
  /** Rows in the last decode pass. */
  batchSize: number
  steps: number
  /** Prefixes the worker holds (filled in by the worker, which owns them). */
  prefixesCached: number
}

/** What the step loop knows of the stats: the prefixes held are the worker's. */
export type LoopStats = Omit<EngineStats, 'prefixesCached'>

export type FromWorker =
  /** `accepts`: the contributions the loaded (derived) graph can take. */
  /** `loraProjections`: what a LoRA may target in it, with sizes (empty: no LoRA). */
  | { v: typeof PROTOCOL_VERSION; type: 'ready'; spec: ModelSpec; accepts: ContributionKind[]; loraProjections: LoraProjection[] }
  | { v: typeof PROTOCOL_VERSION; type: 'tokens'; events: TokenEvent[]; stats: EngineStats }
  | { v: typeof PROTOCOL_VERSION; type: 'failed'; id: number; error: FlatError }
  | { v: typeof PROTOCOL_VERSION; type: 'stats'; stats: EngineStats }
  | { v: typeof PROTOCOL_VERSION; type: 'fatal'; error: FlatError }
