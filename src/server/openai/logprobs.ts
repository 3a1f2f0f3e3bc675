/**
 * Log probabilities in OpenAI's two formats. Values are the log-softmax of the
 * model's raw logits, before repetition penalty and sampling warpers (vLLM's
 * default; TGI reports the warped scores instead), so they describe the model
 * and the text, whatever the sampling settings. Alternatives ("top") are the
 * most likely tokens under the same distribution.
 */
import type { PromptToken, ScoredToken } from '../../engine/protocol.js'
import type { Token } from './choices.js'

export interface CompletionLogprobsT {
  tokens: string[]
  token_logprobs: Array<number | null>
  top_logprobs: Array<Record<string, number> | null>
  text_offset: number[]
}

/**
 * The legacy completions format. As OpenAI: each top_logprobs entry holds the
 * requested alternatives and always the chosen token (so up to k + 1 entries);
 * with echo the prompt's tokens come first, the first of them unscored (null).
 * `offset` is where the first listed token starts in the choice's text.
 */
export function completionLogprobs(tokens: Token[], offset: number, prompt: PromptToken[] = []): CompletionLogprobsT {
  const out: CompletionLogprobsT = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] }
  let at = offset
  for (const t of [...prompt, ...tokens]) {
    out.tokens.push(t.text)
    out.token_logprobs.push(t.logprob)
    out.top_logprobs.push(t.logprob === null ? null : topRecord(t.text, t.logprob, t.top))
    out.text_offset.push(at)
    at += t.text.length
  }
  return out
}

function topRecord(text: string, logprob: number, top: ScoredToken[] = []): Record<string, number> {
  const record: Record<string, number> = {}
  for (const alt of top) if (!(alt.text in record)) record[alt.text] = alt.logprob
  if (!(text in record)) record[text] = logprob
  return record
}

export interface ChatTokenLogprob {
  token: string
  logprob: number
  bytes: number[]
  top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }>
}

const utf8Bytes = (text: string) => [...Buffer.from(text, 'utf8')]

/** The chat format: per token its text, bytes and logprob, and the `top` most likely tokens (OpenAI's top_logprobs). */
export function chatLogprobs(tokens: Token[]): { content: ChatTokenLogprob[] } {
  return {
    content: tokens.map((t) => ({
      token: t.text,
      logprob: t.logprob,
      bytes: utf8Bytes(t.text),
      top_logprobs: (t.top ?? []).map((alt) => ({ token: alt.text, logprob: alt.logprob, bytes: utf8Bytes(alt.text) })),
    })),
  }
}
