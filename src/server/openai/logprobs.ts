/**
 * Log probabilities in OpenAI's two formats. prefixd's engine computes the
 * chosen token's log probability (log-softmax of the logits before any
 * sampling warper, as TGI reports it) but not the alternatives: a requested
 * top list holds only the chosen token.
 */
import type { Token } from './choices.js'

export interface CompletionLogprobsT {
  tokens: string[]
  token_logprobs: number[]
  top_logprobs: Array<Record<string, number>>
  text_offset: number[]
}

/** The legacy completions format; `offset` is where generated text starts in the choice's text (echo). */
export function completionLogprobs(tokens: Token[], offset: number): CompletionLogprobsT {
  const out: CompletionLogprobsT = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] }
  let at = offset
  for (const t of tokens) {
    out.tokens.push(t.text)
    out.token_logprobs.push(t.logprob)
    out.top_logprobs.push({ [t.text]: t.logprob })
    out.text_offset.push(at)
    at += t.text.length
  }
  return out
}

export interface ChatTokenLogprob {
  token: string
  logprob: number
  bytes: number[]
  top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }>
}

export function chatLogprobs(tokens: Token[], top: number): { content: ChatTokenLogprob[] } {
  return {
    content: tokens.map((t) => {
      const bytes = [...Buffer.from(t.text, 'utf8')]
      return { token: t.text, logprob: t.logprob, bytes, top_logprobs: top > 0 ? [{ token: t.text, logprob: t.logprob, bytes }] : [] }
    }),
  }
}
