/** Prompt texts that the model's own tokenizer turns into exactly n ids (BOS included). */
import { mulberry32 } from '../src/models/generate/prng.js'
import type { TextTokenizer } from '../src/engine/tokenizer.js'

const WORDS = 'once upon a time there was little dog cat girl boy who liked to play run jump in the park with her his friend ball sun tree'.split(' ')

export function promptOfTokens(tokenizer: TextTokenizer, n: number, seed: number): string {
  const random = mulberry32(seed)
  let words: string[] = []
  for (let tries = 0; tries < 10_000; tries++) {
    const candidate = [...words, WORDS[Math.floor(random() * WORDS.length)]]
    const length = tokenizer.encode(candidate.join(' ')).length
    if (length === n) return candidate.join(' ')
    if (length < n) words = candidate
    else if (words.length > 0 && random() < 0.3) words = words.slice(0, -1) // back off, try other words
  }
  throw new Error(`no prompt of exactly ${n} tokens found`)
}
