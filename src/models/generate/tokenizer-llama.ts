import { fillerMerges, learnMerges, LETTERS_BY_FREQUENCY, type Merge } from './bpe-merges.js'
import { TOKENIZER_CORPUS } from './tokenizer-corpus.js'
import type { TokenizerFiles } from './tokenizer-files.js'

const SPACE = '\u2581' // SentencePiece's "▁"
const SPECIALS = ['<unk>', '<s>', '</s>']

function byteToken(byte: number): string {
  return `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`
}

/** Fills the vocabulary with the corpus merges, then filler merges, up to exactly `vocabSize`. */
function mergesToFill(vocab: string[], vocabSize: number): Merge[] {
  const words = new Map<string, number>()
  for (const word of TOKENIZER_CORPUS.split(/\s+/).filter(Boolean)) {
    words.set(SPACE + word, (words.get(SPACE + word) ?? 0) + 1)
  }
  const known = new Set(vocab)
  const merges: Merge[] = []
  for (const [left, right] of learnMerges(words, vocabSize - vocab.length)) {
    if (known.size === vocabSize) break
    merges.push([left, right])
    known.add(left + right)
  }
  merges.push(...fillerMerges(known, vocabSize - known.size, [SPACE, ...LETTERS_BY_FREQUENCY], LETTERS_BY_FREQUENCY))
  return merges
}

/**
 * A SentencePiece-style BPE tokenizer laid out like stories260K's (and Llama
 * 2's): <unk> 0, <s> 1, </s> 2, byte-fallback tokens <0x00>..<0xFF> at 3..258,
 * then "▁" and printable ASCII, then merged pieces. Spaces become "▁", one is
 * prepended, and bytes of characters outside the vocabulary fall back to
 * <0x..> tokens, so any UTF-8 text encodes; the decoder undoes all three.
 */
export function llamaTokenizerFiles(vocabSize: number, maxPositions: number): TokenizerFiles {
  const pieces = [...SPECIALS]
  for (let byte = 0; byte < 256; byte++) pieces.push(byteToken(byte))
  pieces.push(SPACE)
  for (let code = 0x21; code < 0x7f; code++) pieces.push(String.fromCharCode(code))
  const merges = mergesToFill(pieces, vocabSize)
  const seen = new Set(pieces)
  for (const [left, right] of merges) {
    if (!seen.has(left + right)) {
      pieces.push(left + right)
      seen.add(left + right)
    }
  }
  if (pieces.length !== vocabSize) throw new Error(`llama tokenizer has ${pieces.length} pieces, expected ${vocabSize}`)

  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPACE },
        { type: 'Replace', pattern: { String: ' ' }, content: SPACE },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(pieces.map((piece, id) => [piece, id])),
      merges,
    },
  }
  const config = {
    tokenizer_class: 'LlamaTokenizer',
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: null,
    add_bos_token: true,
    add_eos_token: false,
    model_max_length: maxPositions,
    legacy: true,
    clean_up_tokenization_spaces: false,
  }
  return { tokenizer, config }
}
