/**
 * Token-by-token detokenization. Decoding each token alone is wrong in two
 * ways: with SentencePiece byte fallback or byte-level BPE one character can
 * span several tokens (each alone decodes to U+FFFD), and SentencePiece drops
 * the leading space of the first token of whatever it decodes, so "▁world"
 * alone gives "world" where " world" was meant.
 *
 * The prefix-offset / read-offset technique of TGI and vLLM fixes both: keep a
 * few already-emitted ids as context (prefixOffset..readOffset), decode context
 * + new ids, and emit what the new ids added, decode(ids[prefix:]) minus
 * decode(ids[prefix:read]), but only once it no longer ends in U+FFFD (a
 * character still incomplete). Then the window slides forward. Each step
 * decodes only that window, never the whole sequence; a run of invalid bytes
 * cannot grow it past MAX_HELD ids.
 *
 * Held text is not lost: flush() returns it at the end, so the concatenation of
 * every push() and flush() is decode(all ids) for tokenizers whose decode of a
 * sequence extends the decode of its prefix (SentencePiece, byte-level BPE).
 */

const REPLACEMENT_CHAR = '\uFFFD'

/**
 * Held ids beyond which the text is invalid, not incomplete: every token adds
 * at least one byte and a character has at most four, so a character still
 * open can only have started in the last three held ids (COMPLETABLE_TAIL).
 * Emitting the rest keeps each step's decode window short however long a
 * model keeps producing invalid bytes.
 */
const MAX_HELD = 6
const COMPLETABLE_TAIL = 3

export type DecodeFn = (ids: number[]) => string

export class IncrementalDecoder {
  private readonly decode: DecodeFn
  /** Ids from the current prefix offset on; older ones are dropped. */
  private ids: number[]
  /** ids[0, readOffset) were emitted already (or are context); the rest are pending. */
  private readOffset: number

  /**
   * @param contextIds ids that precede the generated ones (TGI and vLLM use the
   *   last ~5 prompt tokens). They are never emitted; they only let the first
   *   generated token keep its leading space. Without them the first token is
   *   decoded as the start of a text.
   */
  constructor(decode: DecodeFn, contextIds: readonly number[] = []) {
    this.decode = decode
    this.ids = [...contextIds]
    this.readOffset = this.ids.length
  }

  /** Adds one token id; returns the text it completes ('' while a character is incomplete). */
  push(id: number): string {
    this.ids.push(id)
    const prefixText = this.readOffset > 0 ? this.decode(this.ids.slice(0, this.readOffset)) : ''
    const fullText = this.decode(this.ids)
    if (fullText.length > prefixText.length && !fullText.endsWith(REPLACEMENT_CHAR)) return this.advance(fullText, prefixText, this.ids.length)
    if (this.ids.length - this.readOffset <= MAX_HELD) return ''
    // Only the tail can still become a character; what precedes it is final
    // if the text so far already starts with it.
    const upTo = this.ids.length - COMPLETABLE_TAIL
    const settled = this.decode(this.ids.slice(0, upTo))
    if (settled.length <= prefixText.length || !fullText.startsWith(settled)) return ''
    return this.advance(settled, prefixText, upTo)
  }

  /**
   * The text `id` would add after the text emitted so far, without taking it
   * (for listing alternatives to the chosen token). Held ids are left out: an
   * alternative replaces the token that would have completed them.
   */
  peek(id: number): string {
    const context = this.ids.slice(0, this.readOffset)
    const before = context.length > 0 ? this.decode(context) : ''
    const after = this.decode([...context, id])
    return after.startsWith(before) ? after.slice(before.length) : after
  }

  /** Text still held at the end of generation (may contain U+FFFD for a truncated character). */
  flush(): string {
    if (this.readOffset === this.ids.length) return ''
    const prefixText = this.readOffset > 0 ? this.decode(this.ids.slice(0, this.readOffset)) : ''
    const fullText = this.decode(this.ids)
    if (fullText.length <= prefixText.length) {
      this.slide(this.ids.length)
      return ''
    }
    return this.advance(fullText, prefixText, this.ids.length)
  }

  /** Emits the text of ids up to `upTo` (exclusive), given as `text`. */
  private advance(text: string, prefixText: string, upTo: number): string {
    this.slide(upTo)
    return text.slice(prefixText.length)
  }

  /** The ids just emitted, [readOffset, upTo), become the context of the next ones; later ones stay held. */
  private slide(upTo: number): void {
    const from = this.readOffset
    this.ids = this.ids.slice(from)
    this.readOffset = upTo - from
  }
}
