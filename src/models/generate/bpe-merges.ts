/**
 * Deterministic BPE merge lists for the generated tokenizers: first the merges
 * a byte-pair trainer learns from a small corpus, then filler merges that grow
 * letter strings until the vocabulary reaches exactly the model's size.
 */

export type Merge = [string, string]

/**
 * Learns up to `budget` merges from word counts (each word's symbols are its
 * code points). Ties go to the lexicographically smallest pair, so the result
 * is the same on every run; pairs seen fewer than twice are not learned.
 */
export function learnMerges(wordCounts: Map<string, number>, budget: number): Merge[] {
  const words = [...wordCounts].map(([word, count]) => ({ symbols: Array.from(word), count }))
  const merges: Merge[] = []
  while (merges.length < budget) {
    const pairCounts = new Map<string, number>()
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]}\u0000${symbols[i + 1]}`
        pairCounts.set(key, (pairCounts.get(key) ?? 0) + count)
      }
    }
    let best: string | null = null
    let bestCount = 1
    for (const [key, count] of pairCounts) {
      if (count > bestCount || (count === bestCount && best !== null && key < best)) {
        best = key
        bestCount = count
      }
    }
    if (best === null) break
    const [left, right] = best.split('\u0000') as Merge
    merges.push([left, right])
    for (const word of words) word.symbols = mergeSymbols(word.symbols, left, right)
  }
  return merges
}

function mergeSymbols(symbols: string[], left: string, right: string): string[] {
  const out: string[] = []
  for (let i = 0; i < symbols.length; i++) {
    if (i + 1 < symbols.length && symbols[i] === left && symbols[i + 1] === right) {
      out.push(left + right)
      i++
    } else {
      out.push(symbols[i])
    }
  }
  return out
}

/**
 * `count` more merges, each appending one letter to a piece already in the
 * vocabulary, breadth first from `starts` ("▁a", "▁ab", ... "ab", "abc", ...).
 * Adds every new piece to `vocabulary`. Such pieces rarely match real text,
 * but every id the model can emit decodes, which is what they are for.
 */
export function fillerMerges(vocabulary: Set<string>, count: number, starts: string[], letters: string[]): Merge[] {
  const merges: Merge[] = []
  const queue = [...starts]
  const queued = new Set(queue)
  for (let next = 0; merges.length < count; next++) {
    if (next >= queue.length) throw new Error('filler merges ran out of pieces to extend')
    const left = queue[next]
    for (const letter of letters) {
      if (merges.length === count) break
      const piece = left + letter
      if (!vocabulary.has(piece)) {
        merges.push([left, letter])
        vocabulary.add(piece)
      }
      if (!queued.has(piece)) {
        queue.push(piece)
        queued.add(piece)
      }
    }
  }
  return merges
}

/** Letters by their frequency in English, so the filler pieces favour common ones. */
export const LETTERS_BY_FREQUENCY = Array.from('etaoinshrdlcumwfgypbvkjxqz')
