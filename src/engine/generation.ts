/**
 * One request's decoding state inside the engine: its sampler and RNG, its
 * incremental detokenizer and stop-sequence matcher, and the rules that end it
 * (EOS, stop sequence, max_new_tokens), and, when asked, the log
 * probabilities of alternatives and of the prompt's own tokens. Pure given the
 * logits it is handed.
 */
import { contributionPositions, type AdapterContribution } from '../domain/adapter-contribution.js'
import type { LoraAdapter } from '../domain/lora-weights.js'
import { IncrementalDecoder } from './sampling/incremental-decoder.js'
import { TokenSampler, type GraphPick, type TokenChoice } from './sampling/sampler.js'
import { StopMatcher } from './sampling/stop-sequences.js'
import type { FinishReason, GenerationParams, PromptToken, ScoredToken, TokenEvent } from './protocol.js'
import { logNormalizer, topLogprobs, type TokenLogprob } from './sampling/token-logprobs.js'

/**
 * How many prompt ids the detokenizer keeps as context for the first generated
 * token (vLLM's and TGI's choice). One would do for the leading space of a
 * SentencePiece word; a few more cost nothing and cover decoders that look
 * further back.
 */
const DETOKENIZE_CONTEXT = 5

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
  /** The row's LoRA: a low-rank update on its real tokens (beside a prefix: the PT-PEFT pair). */
  readonly lora: LoraAdapter | null

  constructor(
    readonly id: number,
    readonly promptIds: readonly number[],
    /** What the request's adapters contribute, in the order it named them. */
    readonly adapters: readonly AdapterContribution[],
    readonly params: GenerationParams,
    private readonly vocabSize: number,
    private readonly eosIds: ReadonlySet<number>,
    private readonly tokens: TokenText,
  ) {
    const loras = adapters.flatMap((a) => (a.kind === 'lora' ? [a.lora] : []))
    // Two LoRAs on one row would be a third model (PEFT merges or weights them); a pair is a prefix and a LoRA.
    if (loras.length > 1) throw new Error(`a request names at most one LoRA adapter, not ${loras.length}`)
    this.lora = loras[0] ?? null
    this.tenant = params.tenant ?? ''
    const virtualTokens = adapters.reduce((n, a) => n + contributionPositions(a), 0)
    this.prefillTokens = virtualTokens + promptIds.length
    this.maxTotalTokens = this.prefillTokens + params.maxNewTokens
    this.context = [...promptIds]
    this.sampler = new TokenSampler(params, vocabSize, { logprobs: this.reportsLogprob, topLogprobs: params.topLogprobs ?? 0 })
    // With the prompt's last ids as context the completion is
    // decode(prompt + generated) minus decode(prompt): " dog", not "dog".
    this.decoder = new IncrementalDecoder((ids) => tokens.decode(ids), promptIds.slice(-DETOKENIZE_CONTEXT))
    this.stops = new StopMatcher(params.stop)
  }

  /**
   * Whether choosing this request's tokens needs the logits themselves
   * (sampling, repetition penalty, top logprobs); a plain greedy request takes
   * the graph's own pick when the model has one.
   */
  get needsLogits(): boolean {
    return !this.sampler.takesGraphPick
  }

  /** Whether this request reports its tokens' logprobs (a pass where none does lets the graph skip its greedy logprob). */
  get reportsLogprob(): boolean {
    return this.params.logprobs ?? true
  }

  /**
   * Picks the next token and says whether the request ends: from the graph's
   * greedy pick when it is this request's choice, else from the logits row at
   * `offset` (which must then have been fetched).
   */
  step(logits: Float32Array | null, offset: number, pick?: GraphPick): TokenEvent {
    const { tokenId, logprob, top } = this.choose(logits, offset, pick)
    // Alternatives read as they would have followed the text so far: before the chosen token is taken.
    const alternatives = top === undefined ? undefined : this.named(top, this.decoder)
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
    const token: TokenEvent['token'] = { id: tokenId, text: emitted, logprob, special }
    if (alternatives !== undefined) token.top = alternatives
    const event: TokenEvent = { id: this.id, token }
    if (reason !== undefined) {
      this.finished = true
      event.finish = { reason, generatedText: this.text }
    }
    return event
  }

  private choose(logits: Float32Array | null, offset: number, pick: GraphPick | undefined): TokenChoice {
    const picked = pick === undefined ? null : this.sampler.fromGraphPick(pick)
    if (picked !== null) return picked
    if (logits === null) throw new Error(`request ${this.id} needs logits the pass did not fetch`)
    return this.sampler.select(logits, offset, this.context)
  }

  /** Whether the prefill must return every prompt position's logits: to score the prompt (echo with logprobs). */
  get scoresPrompt(): boolean {
    return this.params.promptLogprobs === true
  }

  /**
   * The first step, on the prefill's outputs: `rowStart` is where this row's
   * logits begin, `positions` how many of the sequence's last positions they
   * cover (prompts are left-padded, so the last one predicts the first new
   * token; scoring the prompt needs them all); `pick` the graph's greedy pick
   * at the last position.
   */
  prefillStep(logits: Float32Array | null, rowStart: number, positions: number, pick?: GraphPick): TokenEvent {
    const event = this.step(logits, rowStart + (positions - 1) * this.vocabSize, pick)
    if (this.scoresPrompt) {
      if (logits === null) throw new Error(`request ${this.id} scores its prompt, but the pass did not fetch logits`)
      event.prompt = this.scorePrompt(logits, rowStart, positions)
    }
    return event
  }

  /**
   * Each prompt token's log probability given the tokens before it (the
   * prefix included), from the prefill's logits: token j is predicted by
   * column j - 1. Texts are decoded incrementally, so they add up to
   * decode(prompt).
   */
  private scorePrompt(logits: Float32Array, rowStart: number, seqLen: number): PromptToken[] {
    const ids = this.promptIds
    const V = this.vocabSize
    const k = this.params.topLogprobs ?? 0
    const decoder = new IncrementalDecoder((x) => this.tokens.decode(x))
    const out: PromptToken[] = ids.map((id, j) => {
      if (j === 0) return { id, text: decoder.push(id), logprob: null }
      const offset = rowStart + (seqLen - ids.length + j - 1) * V
      const normalizer = logNormalizer(logits, offset, V)
      const top = k > 0 ? this.named(topLogprobs(logits, offset, V, k, normalizer), decoder) : undefined
      const scored: PromptToken = { id, text: decoder.push(id), logprob: logits[offset + id] - normalizer }
      if (top) scored.top = top
      return scored
    })
    out[out.length - 1].text += decoder.flush()
    return out
  }

  /** Token ids with the text each would add at this point of the decoder. */
  private named(top: TokenLogprob[], decoder: IncrementalDecoder): ScoredToken[] {
    return top.map((x) => ({ id: x.tokenId, text: decoder.peek(x.tokenId), logprob: x.logprob }))
  }
}
