/**
 * One request's decoding state inside the engine: its sampler and RNG, its
 * incremental detokenizer and stop-sequence matcher, and the rules that end it
 * (EOS, stop sequence, max_new_tokens). Pure given the logits it is handed.
 */
import { contributionPositions, type AdapterContribution } from '../domain/adapter-contribution.js'
import { IncrementalDecoder } from './sampling/incremental-decoder.js'
import { TokenSampler } from './sampling/sampler.js'
import { StopMatcher } from './sampling/stop-sequences.js'
import type { FinishReason, GenerationParams, TokenEvent } from './protocol.js'

export interface TokenText {
  decode(ids: number[]): string
  isSpecial(id: number): boolean
}

export class Generation {
  readonly tenant: string
  readonly prefillTokens: number
  readonly maxTotalTokens: number
  /** Prompt and generated ids: the context the repetition penalty looks at. */
  private readonly context: number[]
  private readonly sampler: TokenSampler
  private readonly decoder: IncrementalDecoder
  private readonly stops: StopMatcher
  private generated = 0
  private text = ''
  lastToken = -1
  finished = false

  constructor(
    readonly id: number,
    readonly promptIds: readonly number[],
    /** What the request's adapters contribute, in the order it named them. */
    readonly adapters: readonly AdapterContribution[],
    readonly params: GenerationParams,
    vocabSize: number,
    private readonly eosIds: ReadonlySet<number>,
    private readonly tokens: TokenText,
  ) {
    this.tenant = params.tenant ?? ''
    const virtualTokens = adapters.reduce((n, a) => n + contributionPositions(a), 0)
    this.prefillTokens = virtualTokens + promptIds.length
    this.maxTotalTokens = this.prefillTokens + params.maxNewTokens
    this.context = [...promptIds]
    this.sampler = new TokenSampler(params, vocabSize, { logprobs: params.logprobs ?? true })
    this.decoder = new IncrementalDecoder((ids) => tokens.decode(ids))
    this.stops = new StopMatcher(params.stop)
  }

  /** Picks the next token from a logits row and says whether the request ends. */
  step(logits: Float32Array, offset: number): TokenEvent {
    const { tokenId, logprob } = this.sampler.select(logits, offset, this.context)
    this.context.push(tokenId)
    this.generated++
    this.lastToken = tokenId
    const special = this.tokens.isSpecial(tokenId)
    let reason: FinishReason | undefined
    let emitted = ''
    if (this.eosIds.has(tokenId)) {
      reason = 'eos_token'
    } else {
      const piece = this.stops.push(this.decoder.push(tokenId))
      emitted = piece.emit
      if (piece.stopped) reason = 'stop_sequence'
    }
    if (reason === undefined && this.generated >= this.params.maxNewTokens) reason = 'length'
    if (reason !== undefined && reason !== 'stop_sequence') emitted += this.stops.push(this.decoder.flush()).emit + this.stops.flush()
    this.text += emitted
    const event: TokenEvent = { id: this.id, token: { id: tokenId, text: emitted, logprob, special } }
    if (reason !== undefined) {
      this.finished = true
      event.finish = { reason, generatedText: this.text }
    }
    return event
  }
}
