/**
 * Encoder-decoder models (BART, T5, ...) as Hugging Face optimum exports them:
 * a folder whose config.json says `is_encoder_decoder` and that holds
 * `encoder_model.onnx` plus either `decoder_model.onnx` and
 * `decoder_with_past_model.onnx` or `decoder_model_merged.onnx`.
 *
 * The ModelSpec describes the DECODER: prefixes live in its self-attention
 * past, so layers, heads and head size are the decoder's (BART names them
 * decoder_layers / decoder_attention_heads, T5 num_decoder_layers / num_heads).
 */
import { access, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ModelLoadError } from './model-load-error.js'
import type { ModelSpec } from '../domain/model-spec.js'

type Json = Record<string, unknown>

export const ENCODER_FILE = 'encoder_model.onnx'
export const DECODER_FILE = 'decoder_model.onnx'
export const DECODER_WITH_PAST_FILE = 'decoder_with_past_model.onnx'
export const DECODER_MERGED_FILE = 'decoder_model_merged.onnx'

/**
 * Relative-position models (T5) have no position table, so config.json states
 * no limit; this is T5's own training length, used as the decoder's budget.
 */
export const RELATIVE_POSITION_LIMIT = 512

async function exists(path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}

async function readJson(path: string): Promise<Json | null> {
  try {
    const parsed: unknown = JSON.parse(await readFile(path, 'utf8'))
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Json) : null
  } catch {
    return null
  }
}

/** True when the folder is an encoder-decoder export (config.json says so); its files are checked at load. */
export async function isEncoderDecoderFolder(modelDir: string): Promise<boolean> {
  const cfg = await readJson(join(modelDir, 'config.json'))
  return cfg?.is_encoder_decoder === true
}

export interface Seq2seqFiles {
  encoder: string
  /** Merged decoder: one file serves both the first step and the with-past steps. */
  merged: boolean
  /** decoder_model.onnx, or the merged file. */
  decoder: string
  /** decoder_with_past_model.onnx, or the merged file. */
  decoderWithPast: string
}

/** Which of optimum's decoder layouts the folder holds; the split files are preferred (no branch per call). */
export async function findSeq2seqFiles(modelDir: string): Promise<Seq2seqFiles> {
  const at = (name: string) => join(modelDir, name)
  if (!(await exists(at(ENCODER_FILE)))) throw new ModelLoadError(`encoder-decoder model without ${ENCODER_FILE} in ${modelDir}`)
  if ((await exists(at(DECODER_FILE))) && (await exists(at(DECODER_WITH_PAST_FILE)))) {
    return { encoder: at(ENCODER_FILE), merged: false, decoder: at(DECODER_FILE), decoderWithPast: at(DECODER_WITH_PAST_FILE) }
  }
  if (await exists(at(DECODER_MERGED_FILE))) {
    return { encoder: at(ENCODER_FILE), merged: true, decoder: at(DECODER_MERGED_FILE), decoderWithPast: at(DECODER_MERGED_FILE) }
  }
  throw new ModelLoadError(
    `encoder-decoder model in ${modelDir} needs ${DECODER_FILE} + ${DECODER_WITH_PAST_FILE}, or ${DECODER_MERGED_FILE}`,
  )
}

function pick(cfg: Json, names: string[]): number | undefined {
  for (const n of names) {
    const v = cfg[n]
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v
  }
  return undefined
}

function requirePositive(cfg: Json, names: string[], what: string): number {
  const v = pick(cfg, names)
  if (v === undefined || v <= 0) throw new ModelLoadError(`config.json has no valid ${what} (looked for ${names.join(', ')})`)
  return v
}

function tokenIds(v: unknown): number[] {
  if (typeof v === 'number') return [v]
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number')
  return []
}

export function seq2seqSpecFromConfig(cfg: Json, generation: Json = {}): ModelSpec {
  const numLayers = requirePositive(cfg, ['decoder_layers', 'num_decoder_layers', 'num_layers', 'num_hidden_layers'], 'decoder layer count')
  const heads = requirePositive(cfg, ['decoder_attention_heads', 'num_heads', 'num_attention_heads'], 'decoder attention head count')
  const hiddenSize = requirePositive(cfg, ['d_model', 'hidden_size'], 'hidden size')
  const headDim = pick(cfg, ['d_kv', 'head_dim']) ?? hiddenSize / heads
  if (!Number.isInteger(headDim)) throw new ModelLoadError('config.json: hidden size is not a multiple of the head count')
  const decoderStart = pick(generation, ['decoder_start_token_id']) ?? pick(cfg, ['decoder_start_token_id'])
  if (decoderStart === undefined) throw new ModelLoadError('config.json has no decoder_start_token_id')
  return {
    modelType: typeof cfg.model_type === 'string' ? cfg.model_type : 'unknown',
    numLayers,
    numAttentionHeads: heads,
    numKvHeads: heads,
    headDim,
    valueHeadDim: headDim,
    hiddenSize,
    vocabSize: requirePositive(cfg, ['vocab_size'], 'vocabulary size'),
    maxPositions: pick(cfg, ['max_position_embeddings', 'n_positions']) ?? RELATIVE_POSITION_LIMIT,
    bosTokenId: pick(generation, ['bos_token_id']) ?? pick(cfg, ['bos_token_id']) ?? null,
    eosTokenIds: tokenIds(generation.eos_token_id ?? cfg.eos_token_id),
    padTokenId: pick(cfg, ['pad_token_id']) ?? null,
    prefixRefusal: null,
    quantization: null,
    // Exact by construction: rows share a decoder call only when their past lengths agree (seq2seq-cohort.ts).
    batchInvariant: true,
    graphRewrites: [],
    architecture: 'encoder-decoder',
    decoderStartTokenId: decoderStart,
  }
}

export async function readSeq2seqSpec(modelDir: string): Promise<ModelSpec> {
  const cfg = await readJson(join(modelDir, 'config.json'))
  if (cfg === null) throw new ModelLoadError(`cannot read config.json in ${modelDir}`)
  return seq2seqSpecFromConfig(cfg, (await readJson(join(modelDir, 'generation_config.json'))) ?? {})
}
