import { fillerMerges, learnMerges, LETTERS_BY_FREQUENCY, type Merge } from './bpe-merges.js'
import { TOKENIZER_CORPUS } from './tokenizer-corpus.js'
import type { TokenizerFiles } from './tokenizer-files.js'

const END_OF_TEXT = '<|endoftext|>'

/**
 * GPT-2's byte → printable character table (bytes_to_unicode in OpenAI's
 * encoder.py): `alphabet` in GPT-2's id order (ids 0..255), `charOfByte`
 * indexed by byte value.
 */
function byteLevelTable(): { alphabet: string[]; charOfByte: string[] } {
  const printable: number[] = []
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b)
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b)
  for (let b = 0xae; b <= 0xff; b++) printable.push(b)
  const charOfByte: string[] = new Array(256)
  for (const b of printable) charOfByte[b] = String.fromCodePoint(b)
  const order = [...printable]
  let shifted = 0
  for (let b = 0; b < 256; b++) {
    if (charOfByte[b] === undefined) {
      charOfByte[b] = String.fromCodePoint(256 + shifted++)
      order.push(b)
    }
  }
  return { alphabet: order.map((b) => charOfByte[b]), charOfByte }
}

/** GPT-2's pre-tokenizer pattern: merges never cross these pieces. */
const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu

function corpusWords(byteChar: string[]): Map<string, number> {
  const words = new Map<string, number>()
  const encoder = new TextEncoder()
  for (const match of TOKENIZER_CORPUS.matchAll(GPT2_PATTERN)) {
    const word = Array.from(encoder.encode(match[0]), (b) => byteChar[b]).join('')
    words.set(word, (words.get(word) ?? 0) + 1)
  }
  return words
}

/**
 * A byte-level BPE tokenizer like GPT-2's: the 256 byte characters at ids
 * 0..255 in GPT-2's order, merged pieces after them, and <|endoftext|> (bos,
 * eos and unk) as the last id. Byte-level, so any UTF-8 text encodes.
 */
export function gpt2TokenizerFiles(vocabSize: number, maxPositions: number): TokenizerFiles {
  const { alphabet, charOfByte } = byteLevelTable()
  const pieces = [...alphabet]
  const known = new Set(pieces)
  const target = vocabSize - 1 // the last id is <|endoftext|>
  const merges: Merge[] = []
  for (const [left, right] of learnMerges(corpusWords(charOfByte), target - pieces.length)) {
    if (known.size === target) break
    merges.push([left, right])
    known.add(left + right)
  }
  const space = charOfByte[0x20] // 'Ġ'
  merges.push(...fillerMerges(known, target - known.size, [space, ...LETTERS_BY_FREQUENCY], LETTERS_BY_FREQUENCY))
  const seen = new Set(pieces)
  for (const [left, right] of merges) {
    if (!seen.has(left + right)) {
      pieces.push(left + right)
      seen.add(left + right)
    }
  }
  pieces.push(END_OF_TEXT)
  if (pieces.length !== vocabSize) throw new Error(`gpt2 tokenizer has ${pieces.length} pieces, expected ${vocabSize}`)

  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: vocabSize - 1, content: END_OF_TEXT, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(pieces.map((piece, id) => [piece, id])),
      merges,
    },
  }
  const config = {
    tokenizer_class: 'GPT2Tokenizer',
    add_bos_token: false,
    add_prefix_space: false,
    bos_token: END_OF_TEXT,
    eos_token: END_OF_TEXT,
    unk_token: END_OF_TEXT,
    pad_token: null,
    model_max_length: maxPositions,
    clean_up_tokenization_spaces: false,
  }
  return { tokenizer, config }
}
