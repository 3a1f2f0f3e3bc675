/**
 * Writes a random-weight BART or T5 folder exactly as optimum lays one out
 * (encoder_model.onnx, decoder_model.onnx, decoder_with_past_model.onnx,
 * config.json, generation_config.json, tokenizer files), so tests and the
 * bench need no Python. The tokenizer is the project's Llama-style one.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { GraphBuilder } from '../onnx-graph-builder.js'
import { writeOnnxModel } from '../onnx-writer.js'
import { llamaTokenizerFiles } from '../tokenizer-llama.js'
import { buildBartDecoder, buildBartEncoder } from './onnx-bart.js'
import { buildT5Decoder, buildT5Encoder } from './onnx-t5.js'
import { BOS_ID, decoderStartId, EOS_ID, PAD_ID, seq2seqConfig, seq2seqDims, type Seq2seqArch, type Seq2seqSize } from './seq2seq-dims.js'
import { buildSeq2seqWeights } from './seq2seq-weights.js'

export interface GenerateSeq2seqOptions {
  arch: Seq2seqArch
  size: Seq2seqSize
  out: string
  seed?: number
  onProgress?: (msg: string) => void
}

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`

export async function generateSeq2seqModel(opts: GenerateSeq2seqOptions): Promise<void> {
  const dims = seq2seqDims(opts.arch, opts.size)
  const weights = buildSeq2seqWeights(dims, opts.seed ?? 0)
  await mkdir(opts.out, { recursive: true })
  const bart = opts.arch === 'bart'
  const graphs: Array<[string, () => GraphBuilder]> = [
    ['encoder_model.onnx', () => (bart ? buildBartEncoder(weights) : buildT5Encoder(weights))],
    ['decoder_model.onnx', () => (bart ? buildBartDecoder(weights, false) : buildT5Decoder(weights, false))],
    ['decoder_with_past_model.onnx', () => (bart ? buildBartDecoder(weights, true) : buildT5Decoder(weights, true))],
  ]
  for (const [file, build] of graphs) {
    const bytes = await writeOnnxModel(join(opts.out, file), build())
    opts.onProgress?.(`wrote ${file} (${(bytes / 1e6).toFixed(1)} MB)`)
  }
  const tokenizer = llamaTokenizerFiles(dims.vocabSize, dims.maxPositions)
  const generation: Record<string, unknown> = { decoder_start_token_id: decoderStartId(opts.arch), eos_token_id: EOS_ID, pad_token_id: PAD_ID }
  if (bart) generation.bos_token_id = BOS_ID
  await writeFile(join(opts.out, 'config.json'), json(seq2seqConfig(dims)))
  await writeFile(join(opts.out, 'generation_config.json'), json(generation))
  await writeFile(join(opts.out, 'tokenizer.json'), JSON.stringify(tokenizer.tokenizer))
  await writeFile(join(opts.out, 'tokenizer_config.json'), json(tokenizer.config))
  opts.onProgress?.('wrote config.json, generation_config.json, tokenizer.json, tokenizer_config.json')
}
