/**
 * Reads a model folder's config.json (and generation_config.json) into a
 * ModelSpec. Hugging Face names the same quantity differently per architecture
 * (num_hidden_layers / n_layer, hidden_size / n_embd, ...): each field is looked
 * up under every name a supported family uses.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ModelLoadError } from './model-load-error.js'
import type { ModelSpec } from '../domain/model-spec.js'
import { familyHeadDims, familyKvHeads, familyMaxPositions, prefixRefusal } from './model-families.js'

type Json = Record<string, unknown>

function pick(cfg: Json, names: string[]): number | undefined {
  for (const n of names) {
    const v = cfg[n]
    if (typeof v === 'number' && Number.isFinite(v)) return v
  }
  return undefined
}

function requireInt(cfg: Json, names: string[], what: string): number {
  const v = pick(cfg, names)
  if (v === undefined || !Number.isInteger(v) || v <= 0) {
    throw new ModelLoadError(`config.json has no valid ${what} (looked for ${names.join(', ')})`)
  }
  return v
}

function tokenIds(v: unknown): number[] {
  if (typeof v === 'number') return [v]
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number')
  return []
}

async function readJson(path: string, optional: boolean): Promise<Json> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw new ModelLoadError(`cannot read ${path}: ${(err as Error).message}`)
  }
  try {
    const parsed: unknown = JSON.parse(text)
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object')
    return parsed as Json
  } catch (err) {
    throw new ModelLoadError(`${path} is not valid JSON: ${(err as Error).message}`)
  }
}

/** Position limit under every name a family uses; ALiBi families may state none (model-families.ts). */
function maxPositions(cfg: Json): number {
  const names = ['max_position_embeddings', 'n_positions', 'n_ctx', 'max_seq_len', 'seq_length']
  if (pick(cfg, names) === undefined) {
    const fallback = familyMaxPositions(cfg)
    if (fallback !== undefined) return fallback
  }
  return requireInt(cfg, names, 'maximum position count')
}

export function specFromConfig(cfg: Json, generation: Json = {}): ModelSpec {
  const numLayers = requireInt(cfg, ['num_hidden_layers', 'n_layer', 'num_layers', 'n_layers'], 'layer count')
  const numAttentionHeads = requireInt(cfg, ['num_attention_heads', 'n_head', 'num_heads', 'n_heads'], 'attention head count')
  const hiddenSize = requireInt(cfg, ['hidden_size', 'n_embd', 'd_model'], 'hidden size')
  const numKvHeads = familyKvHeads(cfg) ?? pick(cfg, ['num_key_value_heads', 'num_kv_heads']) ?? numAttentionHeads
  const dims = familyHeadDims(cfg)
  const headDim = dims?.key ?? pick(cfg, ['head_dim']) ?? hiddenSize / numAttentionHeads
  if (!Number.isInteger(headDim)) throw new ModelLoadError('config.json: hidden size is not a multiple of the head count')
  const eos = tokenIds(generation.eos_token_id ?? cfg.eos_token_id)
  const bos = pick(generation, ['bos_token_id']) ?? pick(cfg, ['bos_token_id']) ?? null
  return {
    modelType: typeof cfg.model_type === 'string' ? cfg.model_type : 'unknown',
    numLayers,
    numAttentionHeads,
    numKvHeads,
    headDim,
    valueHeadDim: dims?.value ?? headDim,
    hiddenSize,
    vocabSize: requireInt(cfg, ['vocab_size'], 'vocabulary size'),
    maxPositions: maxPositions(cfg),
    bosTokenId: bos,
    eosTokenIds: eos,
    padTokenId: pick(cfg, ['pad_token_id']) ?? null,
    prefixRefusal: prefixRefusal(cfg),
    quantization: null,
    // Until the engine measures it at load.
    batchInvariant: true,
    graphRewrites: [],
  }
}

export async function readModelSpec(modelDir: string): Promise<ModelSpec> {
  const cfg = await readJson(join(modelDir, 'config.json'), false)
  const generation = await readJson(join(modelDir, 'generation_config.json'), true)
  return specFromConfig(cfg, generation)
}
