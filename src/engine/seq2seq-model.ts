/**
 * Loads an encoder-decoder folder: config.json's decoder shape, the tokenizer,
 * and one ONNX Runtime session per optimum file (encoder, first-step decoder,
 * with-past decoder; the merged decoder serves both decoder roles). The
 * sessions' inputs and outputs are checked against config.json at load.
 */
import * as ort from 'onnxruntime-node'
import { ModelLoadError } from './model-load-error.js'
import type { ModelSpec } from '../domain/model-spec.js'
import { sessionOptions, type SessionOptions } from './onnx-session.js'
import { TextTokenizer } from './tokenizer.js'
import { findSeq2seqFiles, readSeq2seqSpec } from './seq2seq-spec.js'

export interface Seq2seqSessions {
  encoder: ort.InferenceSession
  /** Runs [decoder_start] over the encoder output: gives the cross-attention keys/values. */
  decoder: ort.InferenceSession
  /** One token per row on top of a self-attention past. */
  decoderWithPast: ort.InferenceSession
  /** The decoders are one merged graph: they take `use_cache_branch`. */
  merged: boolean
}

export interface Seq2seqModel {
  spec: ModelSpec
  tokenizer: TextTokenizer
  sessions: Seq2seqSessions
}

interface Meta {
  inputNames: readonly string[]
  outputNames: readonly string[]
}

/** Name of layer i's self (decoder) or cross (encoder) attention past input / present output. */
export const pastName = (i: number, part: 'decoder' | 'encoder', kv: 'key' | 'value') => `past_key_values.${i}.${part}.${kv}`
export const presentName = (i: number, part: 'decoder' | 'encoder', kv: 'key' | 'value') => `present.${i}.${part}.${kv}`

function requireNames(session: Meta, file: string, inputs: string[], outputs: string[]): void {
  for (const n of inputs) if (!session.inputNames.includes(n)) throw new ModelLoadError(`${file} has no '${n}' input`)
  for (const n of outputs) if (!session.outputNames.includes(n)) throw new ModelLoadError(`${file} has no '${n}' output`)
}

function layerNames(layers: number, make: (i: number, kv: 'key' | 'value') => string): string[] {
  return Array.from({ length: layers }, (_, i) => [make(i, 'key'), make(i, 'value')]).flat()
}

/** The layer count of the past inputs must be config.json's: a folder whose files disagree is refused at load. */
function checkLayerCount(session: Meta, file: string, layers: number): void {
  const found = new Set(session.inputNames.flatMap((n) => /^past_key_values\.(\d+)\.decoder\.key$/.exec(n)?.[1] ?? []))
  if (found.size !== layers) throw new ModelLoadError(`${file} has self-attention past for ${found.size} layers, config.json says ${layers}`)
}

async function open(file: string, opts: SessionOptions): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(file, sessionOptions(opts))
  } catch (err) {
    throw new ModelLoadError(`ONNX Runtime cannot load ${file}: ${(err as Error).message}`)
  }
}

export async function loadSeq2seqModel(modelDir: string, opts: SessionOptions): Promise<Seq2seqModel> {
  const spec = await readSeq2seqSpec(modelDir)
  const tokenizer = await TextTokenizer.load(modelDir, spec.bosTokenId)
  const files = await findSeq2seqFiles(modelDir)
  const encoder = await open(files.encoder, opts)
  const decoder = await open(files.decoder, opts)
  const decoderWithPast = files.merged ? decoder : await open(files.decoderWithPast, opts)
  const L = spec.numLayers
  requireNames(encoder, files.encoder, ['input_ids', 'attention_mask'], ['last_hidden_state'])
  const decoderInputs = ['input_ids', 'encoder_hidden_states', 'encoder_attention_mask']
  requireNames(decoder, files.decoder, decoderInputs, ['logits', ...layerNames(L, (i, kv) => presentName(i, 'encoder', kv))])
  const pastInputs = [...layerNames(L, (i, kv) => pastName(i, 'decoder', kv)), ...layerNames(L, (i, kv) => pastName(i, 'encoder', kv))]
  requireNames(decoderWithPast, files.decoderWithPast, [...decoderInputs, ...pastInputs], ['logits', ...layerNames(L, (i, kv) => presentName(i, 'decoder', kv))])
  checkLayerCount(decoderWithPast, files.decoderWithPast, L)
  if (files.merged) requireNames(decoder, files.decoder, ['use_cache_branch'], [])
  return { spec, tokenizer, sessions: { encoder, decoder, decoderWithPast, merged: files.merged } }
}
