import t from 'tap'
import fc from 'fast-check'
import { StopMatcher, type StopMatcherOptions } from '../../src/engine/sampling/stop-sequences.js'
import { IncrementalDecoder } from '../../src/engine/sampling/incremental-decoder.js'

/** Pushes the pieces, then flushes; returns the text a client would have received and the stop seen. */
function stream(stops: string[], pieces: string[], options?: StopMatcherOptions) {
  const matcher = new StopMatcher(stops, options)
  const emitted: string[] = []
  let matched: string | undefined
  for (const piece of pieces) {
    const r = matcher.push(piece)
    emitted.push(r.emit)
    if (r.stopped) {
      matched = r.matched
      break
    }
  }
  if (matched === undefined) emitted.push(matcher.flush())
  return { text: emitted.join(''), emitted, matched }
}

/** Reference by brute force on the whole text: the first position where some stop ends. */
function expected(stops: string[], text: string, includeStop: boolean) {
  for (let end = 1; end <= text.length; end++) {
    const hits = stops.filter((s) => s.length > 0 && text.slice(0, end).endsWith(s))
    if (hits.length > 0) {
      const stop = hits.reduce((a, b) => (b.length > a.length ? b : a))
      return { text: includeStop ? text.slice(0, end) : text.slice(0, end - stop.length), matched: stop }
    }
  }
  return { text, matched: undefined }
}

/** Cuts `text` at the given (sorted, deduplicated) positions. */
function split(text: string, cuts: number[]): string[] {
  const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b)
  const pieces: string[] = []
  let from = 0
  for (const c of at) {
    pieces.push(text.slice(from, c))
    from = c
  }
  pieces.push(text.slice(from))
  return pieces
}

t.test('stop sequence split across pieces', async (t) => {
  const pieces = ['Hello #', '#', '# world']
  const tgi = stream(['###'], pieces)
  t.same(tgi.emitted, ['Hello #', '#', '#'], 'TGI style: streamed at once, stop included')
  t.equal(tgi.matched, '###')
  const openai = stream(['###'], pieces, { includeStop: false })
  t.same(openai.emitted, ['Hello ', '', ''], 'OpenAI style: the maybe-stop tail is held, then dropped')
  t.equal(openai.matched, '###')
})

t.test('overlapping candidates', async (t) => {
  // "ab" could still become "abc"; then "d" makes it "abd", which ends stop "bd".
  const r = stream(['abc', 'bd'], ['a', 'b', 'd', 'zzz'], { includeStop: false })
  t.same(r.emitted, ['', '', 'a'])
  t.equal(r.matched, 'bd')
  // The stop that ends first wins, even when a longer one would match later.
  t.same(stream(['abc', 'ab'], ['abc']), { text: 'ab', emitted: ['ab'], matched: 'ab' })
  // Same end: the longer stop is reported and cut whole.
  t.same(stream(['bc', 'abc'], ['xa', 'bc'], { includeStop: false }).text, 'x')
  // Text after the stop inside the same piece is dropped.
  t.same(stream(['END'], ['done.ENDtrailing']).text, 'done.END')
})

t.test('no stop: everything comes out, held text at flush', async (t) => {
  const m = new StopMatcher(['abc'], { includeStop: false })
  t.same(m.push('xa'), { emit: 'x', stopped: false })
  t.same(m.push('b'), { emit: '', stopped: false })
  t.equal(m.flush(), 'ab')
  t.equal(m.flush(), '', 'flushes once')
  t.same(stream([], ['any', 'thing']).text, 'anything', 'no stops: passthrough')
  t.same(stream([''], ['x']).text, 'x', 'empty stop ignored')
  const stopped = new StopMatcher(['x'])
  stopped.push('ax')
  t.same(stopped.push('more'), { emit: '', stopped: true, matched: 'x' }, 'nothing after a stop')
  t.equal(stopped.flush(), '')
})

t.test('stop matching does not depend on how text is split', async (t) => {
  const chars = fc.constantFrom('a', 'b', 'c', '🙂')
  const str = (max: number) => fc.array(chars, { maxLength: max }).map((xs) => xs.join(''))
  fc.assert(
    fc.property(
      fc.array(str(4), { maxLength: 3 }),
      str(24),
      fc.array(fc.nat(), { maxLength: 8 }),
      fc.boolean(),
      (stops, text, cuts, includeStop) => {
        const want = expected(stops, text, includeStop)
        const got = stream(stops, split(text, cuts), { includeStop })
        const clean = stops.filter((s) => s.length > 0)
        // Excluded: the client never sees any stop. Included: only at the very end.
        const stopFree = includeStop ? got.text.slice(0, got.text.length - (got.matched?.length ?? 0)) : got.text
        return (
          got.text === want.text && got.matched === want.matched && clean.every((s) => !stopFree.includes(s))
        )
      },
    ),
    { numRuns: 500 },
  )
})

/**
 * A toy SentencePiece-with-byte-fallback vocabulary: ids 0..255 are raw bytes
 * (<0xNN>), then word pieces where "▁" stands for a space. Like the real
 * decoder, it joins bytes before UTF-8 decoding (invalid or cut sequences
 * become U+FFFD) and drops the leading space of the first piece.
 */
const words = ['▁hello', '▁wor', 'ld', '▁caf', '!', '▁', 'é']
const WORD = (w: string) => 256 + words.indexOf(w)
const utf8 = new TextEncoder()
function decode(ids: number[]): string {
  const bytes: number[] = []
  for (const id of ids) {
    if (id < 256) bytes.push(id)
    else bytes.push(...utf8.encode(words[id - 256].replaceAll('▁', ' ')))
  }
  const text = new TextDecoder('utf-8').decode(Uint8Array.from(bytes))
  return ids.length > 0 && ids[0] >= 256 && words[ids[0] - 256].startsWith('▁') ? text.slice(1) : text
}
const bytesOf = (s: string) => [...utf8.encode(s)]

function decodeAll(ids: number[], context: number[] = []) {
  const d = new IncrementalDecoder(decode, context)
  const pieces = ids.map((id) => d.push(id))
  return { pieces, flushed: d.flush() }
}

t.test('incremental decoder: multi-byte characters wait for their last byte', async (t) => {
  const cafe = [WORD('▁caf'), ...bytesOf('é')]
  t.same(decodeAll(cafe).pieces, ['caf', '', 'é'])
  const smile = [WORD('▁hello'), ...bytesOf('🙂'), WORD('!')]
  t.same(decodeAll(smile).pieces, ['hello', '', '', '', '🙂', '!'])
  t.same(decodeAll([WORD('▁hello'), WORD('▁wor'), WORD('ld')]).pieces, ['hello', ' wor', 'ld'], 'leading spaces kept')
  const cut = decodeAll([WORD('▁hello'), ...bytesOf('🙂').slice(0, 2)])
  t.same(cut, { pieces: ['hello', '', ''], flushed: '\uFFFD' }, 'a truncated character is flushed as U+FFFD')
  t.same(decodeAll([WORD('▁wor')], [WORD('▁hello')]).pieces, [' wor'], 'prompt context keeps the first space')
})

t.test('incremental decoder: pushes + flush = decode(all ids)', async (t) => {
  const token = fc.oneof(
    fc.integer({ min: 0, max: 255 }),
    fc.integer({ min: 256, max: 256 + words.length - 1 }),
    fc.constantFrom('é', '🙂', 'ß', '中').map((c) => bytesOf(c)),
  )
  const idsArb = fc.array(token, { maxLength: 30 }).map((xs) => xs.flat())
  fc.assert(
    fc.property(idsArb, (ids) => {
      const { pieces, flushed } = decodeAll(ids)
      const text = pieces.join('') + flushed
      return text === decode(ids)
    }),
    { numRuns: 500 },
  )
  // Valid text: no piece ever shows a replacement character.
  fc.assert(
    fc.property(fc.array(fc.constantFrom('a', ' ', 'é', '🙂', '中', 'Ω'), { maxLength: 20 }), (chars) => {
      const ids = bytesOf(chars.join(''))
      const { pieces, flushed } = decodeAll(ids)
      return pieces.join('') + flushed === chars.join('') && pieces.every((p) => !p.includes('\uFFFD'))
    }),
  )
})

t.test('incremental decoder: a long run of invalid bytes is emitted as it goes, not held to the end', async (t) => {
  const byteRuns = fc.array(fc.oneof(fc.integer({ min: 0x80, max: 0xff }), fc.integer({ min: 0, max: 0xff })), { minLength: 1, maxLength: 60 })
  fc.assert(
    fc.property(byteRuns, (ids) => {
      const { pieces, flushed } = decodeAll(ids)
      let longestHeld = 0
      let held = 0
      for (const p of pieces) {
        held = p === '' ? held + 1 : 0
        longestHeld = Math.max(longestHeld, held)
      }
      // Seven held bytes at most (six, plus one while a character completes), so each step decodes a short window.
      return pieces.join('') + flushed === decode(ids) && longestHeld <= 7
    }),
    { numRuns: 1000 },
  )
  const garbage = Array(40).fill(0xff)
  const { pieces } = decodeAll(garbage)
  t.ok(pieces.slice(0, 30).join('').length > 0, 'invalid bytes come out before the end')
})
