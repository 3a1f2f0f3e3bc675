/**
 * The completion text rule of TGI and vLLM, through the engine's own
 * Generation (sampler, detokenizer, stop matcher) on two real tokenizer
 * families: stories260K's SentencePiece BPE with byte fallback, and the
 * generated gpt2 model's byte-level BPE.
 *
 * - the completion is decode(prompt + generated) minus decode(prompt), so the
 *   first word keeps its leading space;
 * - the streamed pieces concatenate to exactly that completion;
 * - a piece never shows U+FFFD unless the completion itself has one (the
 *   generated ids really are an invalid byte sequence): a character split
 *   over several tokens is held back until its last byte.
 *
 * Greedy decoding over a one-hot logits row makes Generation pick exactly the
 * ids fast-check chose, so the real step() path produces the pieces.
 */
import t from 'tap'
import fc from 'fast-check'
import { Generation } from '../../src/engine/generation.js'
import { TextTokenizer } from '../../src/engine/tokenizer.js'
import { greedyParams } from '../helpers/engine-params.js'
import { storiesModelDir } from '../helpers/shared-data.js'
import { generatedModel } from '../helpers/tiny-model.js'

const REPLACEMENT = '\uFFFD'

/** Runs ids through a Generation as if the model had chosen them; returns every token's text. */
function generate(tokenizer: TextTokenizer, vocabSize: number, promptIds: number[], ids: number[], stop: string[] = []) {
  const params = { ...greedyParams(ids.length), stop }
  const gen = new Generation(1, promptIds, [], params, vocabSize, new Set(), tokenizer)
  const logits = new Float32Array(vocabSize)
  const pieces: string[] = []
  let finalText: string | undefined
  for (const id of ids) {
    logits.fill(0)
    logits[id] = 10
    const e = gen.step(logits, 0)
    pieces.push(e.token.text)
    if (e.finish) {
      finalText = e.finish.generatedText
      break
    }
  }
  return { pieces, finalText: finalText ?? '' }
}

/** Characters that exercise multi-byte handling: ASCII, Latin-1, CJK, emoji (4 bytes), spaces, newlines. */
const textChar = fc.constantFrom('a', 'e', 'o', 't', 'h', ' ', ' ', '\n', '.', ',', 'é', 'ß', 'Ω', '中', '文', '🙂', '🐶', 'ŉ')
const text = fc.array(textChar, { minLength: 1, maxLength: 24 }).map((cs) => cs.join(''))

interface Family {
  name: string
  tokenizer: TextTokenizer
  vocabSize: number
}

async function families(): Promise<Family[]> {
  const gpt2Dir = await generatedModel('gpt2')
  return [
    { name: 'SentencePiece (stories260K)', tokenizer: await TextTokenizer.load(storiesModelDir, 1), vocabSize: 512 },
    { name: 'byte-level BPE (generated gpt2)', tokenizer: await TextTokenizer.load(gpt2Dir, null), vocabSize: 512 },
  ]
}

/**
 * Generated ids: valid text's tokens, random vocabulary ids, long runs of the
 * low ids (single bytes in both vocabularies: mostly invalid UTF-8), or mixed.
 */
function generatedIds(f: Family) {
  const fromText = text.map((s) => f.tokenizer.encode(s).filter((id) => !f.tokenizer.isSpecial(id)))
  const random = fc.array(fc.integer({ min: 0, max: f.vocabSize - 1 }), { minLength: 1, maxLength: 20 })
  const bytes = fc.array(fc.integer({ min: 0, max: 260 }), { minLength: 8, maxLength: 40 })
  return fc.oneof(fromText, random, bytes, fc.tuple(fromText, random).map(([a, b]) => [...a, ...b]))
}

t.test('completion text = decode(prompt + generated) - decode(prompt), streamed pieces add up to it', async (t) => {
  for (const f of await families()) {
    const { tokenizer, vocabSize } = f
    fc.assert(
      fc.property(text, generatedIds(f), (prompt, ids) => {
        fc.pre(ids.length > 0)
        const promptIds = tokenizer.encode(prompt)
        const promptText = tokenizer.decode(promptIds)
        const whole = tokenizer.decode([...promptIds, ...ids])
        const { pieces, finalText } = generate(tokenizer, vocabSize, promptIds, ids)
        const completion = whole.slice(promptText.length)
        return (
          whole.startsWith(promptText) &&
          finalText === completion &&
          pieces.join('') === completion &&
          (completion.includes(REPLACEMENT) || pieces.every((p) => !p.includes(REPLACEMENT)))
        )
      }),
      { numRuns: 300 },
    )
    t.pass(`${f.name}: 300 random prompts and id sequences`)
  }
})

t.test('valid text generated token by token never streams U+FFFD and keeps its leading space', async (t) => {
  for (const f of await families()) {
    const { tokenizer, vocabSize } = f
    const promptIds = tokenizer.encode('Once upon a time, there was a')
    // Encoded after the prompt as one text, so the ids are what a model continuing it would produce.
    const both = tokenizer.encode('Once upon a time, there was a dog 🐶 named Max, 中文.')
    t.same(both.slice(0, promptIds.length - 1), promptIds.slice(0, -1), `${f.name}: the prompt's ids start the whole text's`)
    const common = promptIds.findIndex((id, i) => both[i] !== id)
    const cut = common < 0 ? promptIds.length : common
    const { pieces } = generate(tokenizer, vocabSize, both.slice(0, cut), both.slice(cut))
    const completion = tokenizer.decode(both).slice(tokenizer.decode(both.slice(0, cut)).length)
    t.equal(pieces.join(''), completion, f.name)
    t.ok(pieces.every((p) => !p.includes(REPLACEMENT)), `${f.name}: ${JSON.stringify(pieces)}`)
    t.ok(pieces.some((p) => p.startsWith(' ')), `${f.name}: a word piece keeps its leading space`)
    const multiByte = tokenizer.encode('🐶').filter((id) => !tokenizer.isSpecial(id))
    t.ok(multiByte.length > 1, `${f.name}: the emoji spans ${multiByte.length} tokens`)
  }
})

t.test('a stop sequence cuts the completion: what is left is a prefix of decode(prompt + generated) - decode(prompt)', async (t) => {
  for (const f of await families()) {
    const { tokenizer, vocabSize } = f
    fc.assert(
      fc.property(text, text, fc.integer({ min: 1, max: 3 }), (prompt, continuation, stopLength) => {
        const promptIds = tokenizer.encode(prompt)
        const ids = tokenizer.encode(continuation).filter((id) => !tokenizer.isSpecial(id))
        fc.pre(ids.length > 0)
        const whole = tokenizer.decode([...promptIds, ...ids])
        const completion = whole.slice(tokenizer.decode(promptIds).length)
        const stop = completion.slice(-stopLength)
        fc.pre(stop.length > 0 && !stop.includes(REPLACEMENT))
        const { pieces, finalText } = generate(tokenizer, vocabSize, promptIds, ids, [stop])
        // TGI keeps the stop sequence: the text ends at the first place it occurs.
        const end = completion.indexOf(stop) + stop.length
        return pieces.join('') === finalText && finalText === completion.slice(0, end)
      }),
      { numRuns: 200 },
    )
    t.pass(`${f.name}: 200 stop cases`)
  }
})
