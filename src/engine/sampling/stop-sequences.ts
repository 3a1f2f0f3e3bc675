/**
 * Incremental stop-sequence matching on decoded text that arrives piece by
 * piece (one token's text at a time), where a stop sequence may be split
 * across pieces.
 *
 * Whether the stop sequence is part of the output: Hugging Face TGI includes
 * it. Its StopSequenceCriteria matches `<stop>$` against the accumulated output
 * after each token, and generated_text is the decode of every generated token,
 * so `stop: ["Par"]` yields "...is Par". The default here does the same
 * (`includeStop: true`). `includeStop: false` gives OpenAI's convention, where
 * the stop sequence is cut off; only that mode has to hold back a tail that
 * could still turn into a stop sequence.
 *
 * One deliberate difference from TGI: TGI only stops when a stop sequence ends
 * exactly at a token boundary (its regex is anchored at the end), so "Pari"
 * never stops on a token "Paris". Here a stop sequence is found wherever it
 * ends, and text after it in the same piece is dropped.
 *
 * When several stop sequences match, the one that ends first wins (that is
 * what a reader of the stream would see first), and among those the longest.
 * The result never depends on how the text was split into pieces.
 */

export interface StopMatcherOptions {
  /** Keep the matched stop sequence at the end of the output (TGI; default true). */
  includeStop?: boolean
}

export interface StopPushResult {
  /** Text that is final and can be sent to the client now. */
  emit: string
  /** A stop sequence matched; nothing more will be emitted. */
  stopped: boolean
  /** The stop sequence that matched, when stopped. */
  matched?: string
}

export class StopMatcher {
  private readonly stops: string[]
  private readonly includeStop: boolean
  /** Longest stop length minus one: how much old text a match may reach back into. */
  private readonly contextLength: number
  /** The last `contextLength` characters seen (emitted or held). */
  private context = ''
  /** How many characters at the end of `context` are held back, not yet emitted. */
  private held = 0
  private matchedStop: string | undefined

  constructor(stops: readonly string[], options: StopMatcherOptions = {}) {
    // An empty stop sequence would match before any text; it is ignored.
    this.stops = [...new Set(stops.filter((s) => s.length > 0))]
    this.includeStop = options.includeStop ?? true
    this.contextLength = Math.max(0, ...this.stops.map((s) => s.length)) - 1
  }

  get stopped(): boolean {
    return this.matchedStop !== undefined
  }

  push(newText: string): StopPushResult {
    if (this.matchedStop !== undefined) return { emit: '', stopped: true, matched: this.matchedStop }
    if (this.stops.length === 0) return { emit: newText, stopped: false }

    const window = this.context + newText
    const newStart = this.context.length
    const unsentStart = newStart - this.held

    const match = this.findFirstMatch(window, newStart)
    if (match !== undefined) {
      this.matchedStop = match.stop
      this.context = ''
      this.held = 0
      const cut = this.includeStop ? match.start + match.stop.length : match.start
      return { emit: window.slice(unsentStart, Math.max(unsentStart, cut)), stopped: true, matched: match.stop }
    }

    const held = this.includeStop ? 0 : this.longestStopPrefixAtEnd(window)
    const emit = window.slice(unsentStart, window.length - held)
    this.context = this.contextLength > 0 ? window.slice(-this.contextLength) : ''
    this.held = held
    return { emit, stopped: false }
  }

  /** Held-back text once generation ended without a stop sequence ('' after a stop). */
  flush(): string {
    if (this.matchedStop !== undefined || this.held === 0) return ''
    const rest = this.context.slice(this.context.length - this.held)
    this.held = 0
    return rest
  }

  /**
   * The match that ends earliest among those ending inside the new text
   * (at or after `newStart`); earlier ones were already checked by the
   * previous push. Ties go to the longest stop, which starts earliest.
   */
  private findFirstMatch(window: string, newStart: number): { start: number; stop: string } | undefined {
    let best: { start: number; stop: string } | undefined
    let bestEnd = Number.POSITIVE_INFINITY
    for (const stop of this.stops) {
      const start = window.indexOf(stop, Math.max(0, newStart - stop.length + 1))
      if (start < 0) continue
      const end = start + stop.length
      if (end < bestEnd || (end === bestEnd && best !== undefined && stop.length > best.stop.length)) {
        best = { start, stop }
        bestEnd = end
      }
    }
    return best
  }

  /** Length of the longest suffix of `text` that is a proper prefix of some stop sequence. */
  private longestStopPrefixAtEnd(text: string): number {
    for (let length = Math.min(this.contextLength, text.length); length > 0; length--) {
      const suffix = text.slice(text.length - length)
      if (this.stops.some((stop) => stop.length > length && stop.startsWith(suffix))) return length
    }
    return 0
  }
}
