/**
 * Runs the n choices of an OpenAI request side by side (they share the
 * engine's batches) and turns the engine's TGI text into OpenAI's: TGI keeps
 * a matched stop sequence at the end of the text, OpenAI cuts it off. A stop
 * matcher in OpenAI's mode, fed the same token texts, finds the same match and
 * holds back any tail that could still become a stop sequence while streaming.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { PromptToken, TokenEvent } from '../../engine/protocol.js'
import { StopMatcher } from '../../engine/sampling/stop-sequences.js'
import type { GenerationService, PreparedRequest } from '../generation-service.js'
import { finishReason } from './generate-request.js'

export type Token = TokenEvent['token']

export interface ChoiceResult {
  index: number
  text: string
  finishReason: 'stop' | 'length'
  tokens: Token[]
  /** The scored prompt tokens, when the request asked for prompt logprobs. */
  prompt?: PromptToken[]
}

/** One streamed step of one choice: new final text (maybe ''), its token, and the finish on the last one. */
export interface ChoicePiece {
  index: number
  text: string
  token: Token
  finishReason?: 'stop' | 'length'
  /** On a choice's first piece, when the request asked for prompt logprobs. */
  prompt?: PromptToken[]
}

/** `log`: the request's logger, for each choice's report. */
export async function runChoices(
  service: GenerationService,
  log: FastifyBaseLogger,
  choices: PreparedRequest[],
  signal: AbortSignal,
  onPiece?: (piece: ChoicePiece) => void,
): Promise<ChoiceResult[]> {
  // One failed choice cancels its siblings: the request has failed anyway.
  const all = new AbortController()
  const cancelAll = () => all.abort()
  signal.addEventListener('abort', cancelAll, { once: true })
  try {
    return await Promise.all(choices.map((prepared, index) => runOne(service, log, prepared, index, all.signal, onPiece)))
  } catch (err) {
    all.abort()
    throw err
  } finally {
    signal.removeEventListener('abort', cancelAll)
  }
}

async function runOne(
  service: GenerationService,
  log: FastifyBaseLogger,
  prepared: PreparedRequest,
  index: number,
  signal: AbortSignal,
  onPiece?: (piece: ChoicePiece) => void,
): Promise<ChoiceResult> {
  const matcher = new StopMatcher(prepared.params.stop, { includeStop: false })
  let text = ''
  let reason: 'stop' | 'length' = 'stop'
  let prompt: PromptToken[] | undefined
  const result = await service.run(prepared, signal, log, (e) => {
    prompt ??= e.prompt
    let piece = matcher.push(e.token.text).emit
    if (e.finish) {
      piece += matcher.flush()
      reason = finishReason(e.finish.reason)
    }
    text += piece
    onPiece?.({ index, text: piece, token: e.token, ...(e.finish ? { finishReason: reason } : {}), ...(e.prompt ? { prompt: e.prompt } : {}) })
  })
  return { index, text, finishReason: reason, tokens: result.tokens, ...(prompt ? { prompt } : {}) }
}

/** OpenAI's token accounting of one answer: the prompt counted once, every choice's tokens summed. */
export function usage(promptTokens: number, results: Array<{ tokens: unknown[] }>) {
  const completion = results.reduce((n, r) => n + r.tokens.length, 0)
  return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion }
}
