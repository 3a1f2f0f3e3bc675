/**
 * What a request with stop sequences, a smaller max_new_tokens or an extra EOS
 * token must return, derived from the same request run to its full length
 * without them. Only the end changes; the tokens before it are the same.
 */
import type { Outcome } from './batching-requests.js'

export interface Expected {
  ids: number[]
  reason: Outcome['reason']
  text: string
}

/**
 * Stop sequences, as src/engine/sampling/stop-sequences.ts documents them: the
 * request ends at the first token whose text completes a stop sequence, and
 * generated_text keeps the stop sequence (TGI's choice, includeStop true),
 * cut right after the earliest-ending match.
 */
export function expectStopped(full: Outcome, stops: readonly string[]): Expected {
  let text = ''
  for (let k = 0; k < full.pieces.length; k++) {
    text += full.pieces[k]
    const ends = stops.map((s) => (text.indexOf(s) >= 0 ? text.indexOf(s) + s.length : Infinity))
    const end = Math.min(...ends)
    if (end !== Infinity) return { ids: full.ids.slice(0, k + 1), reason: 'stop_sequence', text: text.slice(0, end) }
  }
  return { ids: full.ids, reason: full.reason, text: full.text }
}

/** The first max tokens of a longer run, ending by length; generated_text is their completion text as `decode` gives it (after the prompt). */
export function expectTruncated(full: Outcome, max: number, decode: (ids: number[]) => string): Expected {
  if (full.ids.length < max) throw new Error(`the full run has only ${full.ids.length} tokens`)
  return { ids: full.ids.slice(0, max), reason: 'length', text: decode(full.ids.slice(0, max)) }
}

/**
 * With `eos` added to the model's EOS ids: ends on its first occurrence, which
 * is reported as a token but adds no text (`decode` gives the completion text after the prompt).
 */
export function expectEos(full: Outcome, eos: number, decode: (ids: number[]) => string): Expected | null {
  const at = full.ids.indexOf(eos)
  if (at < 0) return null
  return { ids: full.ids.slice(0, at + 1), reason: 'eos_token', text: decode(full.ids.slice(0, at)) }
}

export function expectationDifferences(label: string, got: Outcome, want: Expected): string[] {
  const out: string[] = []
  if (JSON.stringify(got.ids) !== JSON.stringify(want.ids)) out.push(`${label}: ids ${JSON.stringify(got.ids)}, expected ${JSON.stringify(want.ids)}`)
  if (got.reason !== want.reason) out.push(`${label}: finish ${got.reason}, expected ${want.reason}`)
  if (got.text !== want.text) out.push(`${label}: text ${JSON.stringify(got.text)}, expected ${JSON.stringify(want.text)}`)
  return out
}
