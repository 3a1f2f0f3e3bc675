/**
 * Turns a GenerationRequest (what a front end made of its body) into an
 * engine request and collects its result: validation, parameter defaults,
 * prefix resolution, the position budget check, and cancellation when the
 * client goes away.
 */
import type { Config } from '../config/schema.js'
import type { EngineClient } from '../engine/engine-client.js'
import type { FinishReason, GenerationParams, TokenEvent } from '../engine/protocol.js'
import { normalizeSamplingParams } from '../engine/sampling/sampling-params.js'
import type { PromptEncoder } from '../engine/prompt-encoder.js'
import type { FastifyBaseLogger } from 'fastify'
import { CancelledError, PromptTooLongError, ValidationError } from '../errors.js'
import { errorTypeOf, type CodedError } from '../domain/error-table.js'
import { epochMs } from '../domain/clock.js'
import type { Principal } from '../auth/api-keys.js'
import type { ResolvedPrefix } from '../prefixes/store/prefix-record.js'
import { invalidField, type GenerationRequest } from './generation-request.js'
import { positionBudgetProblem } from './position-budget.js'

export interface PrefixResolver {
  /** The prefix as this caller may use it; another tenant's private prefix is "not found". */
  resolve(id: string, principal: Principal): Promise<ResolvedPrefix>
}

/** Who calls when no authentication is configured: everyone, with every right. */
export const OPEN_PRINCIPAL: Principal = { tenant: 'anonymous', role: 'admin' }

/** A validated request, as the engine will run it; read-only from here on. */
export interface PreparedRequest {
  /** When the request arrived (epoch ms), for queue and latency metrics. */
  readonly arrivedAt: number
  readonly promptIds: number[]
  readonly prefixes: ResolvedPrefix[]
  readonly params: Readonly<GenerationParams>
}

export interface RequestTimings {
  arrivedAt: number
  admittedAt?: number
  firstTokenAt?: number
  finishedAt: number
}

export interface GenerationResult {
  generatedText: string
  finishReason: FinishReason
  tokens: TokenEvent['token'][]
  timings: RequestTimings
}

/** What a finished request reports to metrics and logs. */
export interface RequestReport {
  log: FastifyBaseLogger
  tenant: string
  prefixIds: string[]
  promptTokens: number
  generatedTokens: number
  /** 'success', 'cancelled', or the error type. */
  outcome: string
  finishReason?: FinishReason
  timings: RequestTimings
}

export class GenerationService {
  private running = 0

  constructor(
    private readonly config: Config,
    private readonly engine: EngineClient,
    private readonly tokenizer: PromptEncoder,
    private readonly prefixes: PrefixResolver,
    private readonly report: (r: RequestReport) => void = () => {},
  ) {}

  /** Generations submitted and not yet finished, failed or cancelled. */
  get inFlight(): number {
    return this.running
  }

  /**
   * Validates the request once and resolves what it names: the result is final.
   * `signal`: the client went away; checked after each awaited step, so no work is done for a gone client.
   */
  async prepare(request: GenerationRequest, principal: Principal = OPEN_PRINCIPAL, signal?: AbortSignal): Promise<PreparedRequest> {
    const arrivedAt = epochMs()
    const { config } = this
    if (request.inputs.length > config.MAX_INPUT_CHARS) {
      throw invalidField('inputs', `inputs is ${request.inputs.length} characters long; the limit is ${config.MAX_INPUT_CHARS}`)
    }
    if (request.stop.length > config.MAX_STOP_SEQUENCES) {
      throw invalidField('stop', `stop has ${request.stop.length} sequences; the limit is ${config.MAX_STOP_SEQUENCES}`)
    }
    const prefixes = await Promise.all(request.prefixIds.map((id) => this.prefixes.resolve(id, principal)))
    if (signal?.aborted) throw new CancelledError('the client went away')
    // Off the HTTP thread when long: a maximum-size prompt must not stall /health.
    const promptIds = await this.tokenizer.encode(request.inputs)
    if (signal?.aborted) throw new CancelledError('the client went away')
    const maxNewTokens = request.maxNewTokens ?? config.DEFAULT_MAX_NEW_TOKENS
    const prefixLen = prefixes.reduce((n, x) => n + x.numVirtualTokens, 0)
    const overflow = positionBudgetProblem(this.engine.spec, prefixLen, promptIds.length, maxNewTokens)
    if (overflow !== null) throw new PromptTooLongError(overflow)
    return {
      arrivedAt,
      promptIds,
      prefixes,
      params: {
        ...this.samplingParams(request.sampling),
        maxNewTokens,
        stop: request.stop,
        deadline: Date.now() + config.REQUEST_TIMEOUT_MS,
        tenant: principal.tenant,
        logprobs: request.logprobs !== null,
        ...(request.logprobs !== null ? { topLogprobs: request.logprobs.top, promptLogprobs: request.logprobs.prompt } : {}),
      },
    }
  }

  /**
   * The schema bounds every field first; the sampler's own range checks are a
   * second guard, and what they refuse is the request's fault (422), never a 500.
   */
  private samplingParams(input: Parameters<typeof normalizeSamplingParams>[0]): ReturnType<typeof normalizeSamplingParams> {
    try {
      return normalizeSamplingParams(input)
    } catch (err) {
      if (err instanceof RangeError) throw new ValidationError(`parameters: ${err.message}`)
      throw err
    }
  }

  /**
   * Runs a prepared request; `onToken` sees every token as it comes.
   * `signal` aborts it (the client went away): the engine frees its slot at the next step.
   * Every request, however it ends, is reported once (metrics and the request's log line).
   */
  run(req: PreparedRequest, signal: AbortSignal, log: FastifyBaseLogger, onToken?: (e: TokenEvent) => void): Promise<GenerationResult> {
    const timings: RequestTimings = { arrivedAt: req.arrivedAt, finishedAt: req.arrivedAt }
    const tokens: TokenEvent['token'][] = []
    this.running++
    const done = (outcome: string, finishReason?: FinishReason) => {
      this.running--
      timings.finishedAt = epochMs()
      this.report({
        log,
        tenant: req.params.tenant ?? OPEN_PRINCIPAL.tenant,
        prefixIds: req.prefixes.map((p) => p.id),
        promptTokens: req.promptIds.length,
        generatedTokens: tokens.length,
        outcome,
        finishReason,
        timings,
      })
    }
    if (signal.aborted) {
      // Gone while the request was prepared: nothing reaches the engine.
      done('cancelled')
      return Promise.reject(new CancelledError('the client went away'))
    }
    return new Promise((resolve, reject) => {
      const submitted = this.engine.submit(
        req.promptIds,
        req.prefixes.map((x) => x.key),
        req.params,
        {
          onToken: (e) => {
            if (e.admittedAt !== undefined) timings.admittedAt = e.admittedAt
            timings.firstTokenAt ??= epochMs()
            tokens.push(e.token)
            onToken?.(e)
            if (e.finish) {
              signal.removeEventListener('abort', abort)
              done('success', e.finish.reason)
              resolve({ generatedText: e.finish.generatedText, finishReason: e.finish.reason, tokens, timings })
            }
          },
          onError: (err: CodedError) => {
            signal.removeEventListener('abort', abort)
            done(errorTypeOf(err.code))
            reject(err)
          },
        },
      )
      const abort = () => {
        submitted.cancel()
        done('cancelled')
        reject(new CancelledError('the client went away'))
      }
      signal.addEventListener('abort', abort, { once: true })
    })
  }
}
