/**
 * Loading an encoder-decoder folder: detected from config.json, either of
 * optimum's decoder layouts, and refused at load, with the reason named, when
 * a file is missing or the files disagree with config.json.
 */
import t, { type Test } from 'tap'
import { copyFileSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadSeq2seqModel } from '../../src/engine/seq2seq-model.js'
import { isEncoderDecoderFolder } from '../../src/engine/seq2seq-spec.js'
import { SEQ2SEQ_FIXTURES } from '../helpers/seq2seq-data.js'

const [bart, t5] = SEQ2SEQ_FIXTURES
const opts = { executionProvider: 'cpu' as const, intraOpThreads: 1 }

/** A folder with the given files of a fixture linked in, and config.json possibly edited. */
function folder(t: Test, from: string, files: string[], config: (c: Record<string, unknown>) => Record<string, unknown> = (c) => c): string {
  const dir = t.testdir()
  for (const f of files) symlinkSync(join(from, f), join(dir, f))
  copyFileSync(join(from, 'tokenizer.json'), join(dir, 'tokenizer.json'))
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config(JSON.parse(readFileSync(join(from, 'config.json'), 'utf8')) as Record<string, unknown>)))
  return dir
}

t.test('detection and both decoder layouts', async (t) => {
  t.equal(await isEncoderDecoderFolder(bart.modelDir), true)
  t.equal(await isEncoderDecoderFolder(t.testdir({ 'config.json': JSON.stringify({ model_type: 'llama' }) })), false)
  t.equal((await loadSeq2seqModel(bart.modelDir, opts)).sessions.merged, true, 'bart-toy: merged decoder')
  const split = await loadSeq2seqModel(t5.modelDir, opts)
  t.equal(split.sessions.merged, false, 't5-toy: decoder + decoder with past')
  t.not(split.sessions.decoder, split.sessions.decoderWithPast)
})

t.test('refusals name what is wrong', async (t) => {
  const encoderOnly = folder(t, t5.modelDir, ['encoder_model.onnx'])
  await t.rejects(loadSeq2seqModel(encoderOnly, opts), { message: /needs decoder_model\.onnx \+ decoder_with_past_model\.onnx, or decoder_model_merged\.onnx/ })
  const noEncoder = folder(t, t5.modelDir, ['decoder_model.onnx', 'decoder_with_past_model.onnx'])
  await t.rejects(loadSeq2seqModel(noEncoder, opts), { message: /without encoder_model\.onnx/ })
  const deeper = folder(t, t5.modelDir, ['encoder_model.onnx', 'decoder_model.onnx', 'decoder_with_past_model.onnx'], (c) => ({ ...c, num_decoder_layers: 3 }))
  await t.rejects(loadSeq2seqModel(deeper, opts), { message: /no 'present\.2\.encoder\.key' output/ })
  const shallower = folder(t, t5.modelDir, ['encoder_model.onnx', 'decoder_model.onnx', 'decoder_with_past_model.onnx'], (c) => ({ ...c, num_decoder_layers: 1 }))
  await t.rejects(loadSeq2seqModel(shallower, opts), { message: /self-attention past for 2 layers, config\.json says 1/ })
})
