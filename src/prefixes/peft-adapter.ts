/**
 * Hugging Face PEFT prefix-tuning adapters, as `save_pretrained` writes them:
 * `adapter_config.json` and `adapter_model.safetensors` holding one tensor,
 * `prompt_embeddings` [P, num_layers * 2 * token_dim]. PEFT reshapes it to
 * [P, 2 * num_layers, H, head_dim] (H = num_attention_heads, which for a
 * grouped-query model is the key/value head count), permutes to
 * [2 * num_layers, batch, H, P, head_dim] and splits in pairs: layer i's key is
 * index 2i, its value 2i + 1. This module reproduces exactly that, giving each
 * layer its [H, P, head_dim] key and value.
 *
 * Pickled adapters (`adapter_model.bin`, torch.save files) are refused
 * outright: unpickling runs arbitrary code, and PEFT itself defaults to
 * safetensors.
 */
import { open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { InvalidPrefixError } from '../errors.js'
import { decodeFloatTensor } from './dtype-convert.js'
import type { ModelArchitecture } from '../domain/model-spec.js'
import type { PrefixKV } from '../domain/prefix-kv.js'
import { layerSlices } from './seq2seq-layer-mapping.js'
import { parseSafetensors, type ParseOptions, type SafetensorsFile } from './safetensors.js'

export const PEFT_CONFIG_FILE = 'adapter_config.json'
export const PEFT_WEIGHTS_FILE = 'adapter_model.safetensors'
export const PEFT_TENSOR = 'prompt_embeddings'

export interface PeftPrefixConfig {
  numVirtualTokens: number
  numLayers: number
  /** PEFT's num_attention_heads: the key/value heads of the model it was trained on. */
  numKvHeads: number
  tokenDim: number
  headDim: number
  /** Which kind of model PEFT trained it for: it decides the layer mapping. */
  architecture: ModelArchitecture
}

function invalid(message: string): never {
  throw new InvalidPrefixError(message)
}

function positiveInteger(config: Record<string, unknown>, field: string): number {
  const v = config[field]
  if (v === undefined || v === null) invalid(`${PEFT_CONFIG_FILE} has no "${field}"`)
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    invalid(`${PEFT_CONFIG_FILE}: "${field}" is ${JSON.stringify(v)}, not a positive integer`)
  }
  return v
}

/** adapter_config.json (its bytes, its text or the parsed object) as a JSON object, whatever its peft_type. */
export function parseAdapterConfigJson(config: Uint8Array | string | unknown): Record<string, unknown> {
  let raw: unknown = config
  if (config instanceof Uint8Array || typeof config === 'string') {
    try {
      const text = typeof config === 'string' ? config : new TextDecoder('utf-8', { fatal: true }).decode(config)
      raw = JSON.parse(text)
    } catch {
      invalid(`${PEFT_CONFIG_FILE} is not valid UTF-8 JSON`)
    }
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) invalid(`${PEFT_CONFIG_FILE} must be a JSON object`)
  return raw as Record<string, unknown>
}

/** Validates adapter_config.json (its bytes, its text or the parsed object) as a prefix-tuning config. */
export function parsePeftConfig(config: Uint8Array | string | unknown): PeftPrefixConfig {
  const obj = parseAdapterConfigJson(config)

  const peftType = obj.peft_type
  if (typeof peftType !== 'string') invalid(`${PEFT_CONFIG_FILE} has no "peft_type"; expected "PREFIX_TUNING"`)
  if (peftType.toUpperCase() !== 'PREFIX_TUNING') {
    invalid(`the adapter is peft_type "${peftType}"; only PREFIX_TUNING adapters are accepted`)
  }
  const architecture = adapterArchitecture(obj)
  const numVirtualTokens = positiveInteger(obj, 'num_virtual_tokens')
  const numLayers = positiveInteger(obj, 'num_layers')
  const numKvHeads = positiveInteger(obj, 'num_attention_heads')
  const tokenDim = positiveInteger(obj, 'token_dim')
  if (tokenDim % numKvHeads !== 0) {
    invalid(`${PEFT_CONFIG_FILE}: token_dim ${tokenDim} is not divisible by num_attention_heads ${numKvHeads}`)
  }
  return { numVirtualTokens, numLayers, numKvHeads, tokenDim, headDim: tokenDim / numKvHeads, architecture }
}

/**
 * SEQ_2_SEQ_LM adapters (num_transformer_submodules 2) are for encoder-decoder
 * models; everything else PEFT writes for prefix tuning has one submodule.
 */
function adapterArchitecture(obj: Record<string, unknown>): ModelArchitecture {
  const submodules = obj.num_transformer_submodules ?? null
  const seq2seq = typeof obj.task_type === 'string' && obj.task_type.toUpperCase() === 'SEQ_2_SEQ_LM'
  if (seq2seq && (submodules === null || submodules === 2)) return 'encoder-decoder'
  if (!seq2seq && (submodules === null || submodules === 1)) return 'decoder-only'
  invalid(
    `${PEFT_CONFIG_FILE}: "num_transformer_submodules" is ${JSON.stringify(submodules)} for task_type ${JSON.stringify(obj.task_type ?? null)}; ` +
      'expected 1 (decoder-only) or 2 with SEQ_2_SEQ_LM (encoder-decoder)',
  )
}

/** The weights file must hold exactly `prompt_embeddings` [P, num_layers * 2 * token_dim]; returns its dtype. */
function checkWeightsHeader(tensors: Map<string, { dtype: string; shape: number[] }>, cfg: PeftPrefixConfig): string {
  const t = tensors.get(PEFT_TENSOR)
  if (t === undefined) {
    const found = [...tensors.keys()].map((n) => `'${n}'`).join(', ') || 'no tensors'
    invalid(`${PEFT_WEIGHTS_FILE} has no '${PEFT_TENSOR}' tensor (found ${found})`)
  }
  const extra = [...tensors.keys()].filter((n) => n !== PEFT_TENSOR)
  if (extra.length > 0) {
    invalid(`${PEFT_WEIGHTS_FILE} holds unexpected tensors besides '${PEFT_TENSOR}': ${extra.map((n) => `'${n}'`).join(', ')}`)
  }
  const width = cfg.numLayers * 2 * cfg.tokenDim
  const [rows, cols] = t.shape
  if (t.shape.length !== 2 || rows !== cfg.numVirtualTokens || cols !== width) {
    invalid(
      `'${PEFT_TENSOR}' is [${t.shape.join(', ')}], but ${PEFT_CONFIG_FILE} ` +
        `(num_virtual_tokens ${cfg.numVirtualTokens}, num_layers ${cfg.numLayers}, token_dim ${cfg.tokenDim}) ` +
        `needs [${cfg.numVirtualTokens}, ${width}]`,
    )
  }
  return t.dtype
}

/**
 * Row t of prompt_embeddings viewed as [2L, H, D]; which slices each layer
 * takes depends on the architecture (seq2seq-layer-mapping.ts). Output per
 * layer is [H, P, D], the past_key_values layout.
 */
function splitIntoLayers(embeddings: Float32Array, cfg: PeftPrefixConfig): Pick<PrefixKV, 'keys' | 'values'> {
  const { numVirtualTokens: P, numLayers: L, numKvHeads: H, headDim: D } = cfg
  const rowWidth = 2 * L * H * D
  // One [H, P, D] tensor from slot `slot` of every row: a transpose from [P, H, D].
  const gather = (slot: number): Float32Array => {
    const out = new Float32Array(H * P * D)
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < P; t++) {
        const from = t * rowWidth + (slot * H + h) * D
        out.set(embeddings.subarray(from, from + D), (h * P + t) * D)
      }
    }
    return out
  }
  const keys: Float32Array[] = []
  const values: Float32Array[] = []
  for (let i = 0; i < L; i++) {
    const slices = layerSlices(i, L, cfg.architecture)
    keys.push(gather(slices.key))
    values.push(gather(slices.value))
  }
  return { keys, values }
}

export interface PeftAdapter {
  prefix: PrefixKV
  config: PeftPrefixConfig
  /** The dtype prompt_embeddings was stored in (F32, F16 or BF16). */
  dtype: string
}

/** Reads a PEFT prefix-tuning adapter from its config and weights bytes, validating both. */
export function readPeftAdapter(config: Uint8Array | string | unknown, weights: Uint8Array, opts: ParseOptions = {}): PeftAdapter {
  if (looksLikePickle(weights)) invalid(PICKLE_REFUSAL)
  return readPeftPrefixFile(parsePeftConfig(config), parseSafetensors(weights, opts))
}

/** As readPeftAdapter, on a validated config and a parsed weights file. */
export function readPeftPrefixFile(cfg: PeftPrefixConfig, file: SafetensorsFile): PeftAdapter {
  const dtype = checkWeightsHeader(file.tensors, cfg)
  const embeddings = decodeFloatTensor(file.bytesOf(PEFT_TENSOR), dtype, `'${PEFT_TENSOR}'`)
  const { keys, values } = splitIntoLayers(embeddings, cfg)
  const prefix: PrefixKV = {
    numVirtualTokens: cfg.numVirtualTokens,
    numLayers: cfg.numLayers,
    numKvHeads: cfg.numKvHeads,
    headDim: cfg.headDim,
    keys,
    values,
  }
  return { prefix, config: cfg, dtype }
}

// --- pickles -----------------------------------------------------------------

export const PICKLE_REFUSAL = 'pickle files are not accepted; save with safe_serialization=True'

/** File names PyTorch and PEFT use for pickled weights. */
const PICKLE_NAME = /(^adapter_model\.bin$)|\.(pt|pth|pkl|pickle|ckpt)$/i

/**
 * A pickle (protocol 2+) starts with 0x80 then the protocol number; torch.save's
 * default zip container starts with "PK\x03\x04". Both byte pairs can also begin
 * a legitimate safetensors header length (0x0280 = 640 bytes), so a file only
 * counts as a pickle if byte 8 is not the '{' a safetensors header starts with.
 */
export function looksLikePickle(head: Uint8Array): boolean {
  const pickleMagic = head.length >= 2 && head[0] === 0x80 && head[1] >= 2 && head[1] <= 5
  const zipMagic = head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04
  return (pickleMagic || zipMagic) && !(head.length > 8 && head[8] === 0x7b)
}

/** Returns the name of the first pickled-looking file in `dir`, or null. */
export async function findPickledFile(dir: string): Promise<string | null> {
  const entries = await readdir(dir, { withFileTypes: true })
  for (const e of entries) if (e.isFile() && PICKLE_NAME.test(e.name)) return e.name
  for (const e of entries) {
    if (!e.isFile()) continue
    const handle = await open(join(dir, e.name), 'r')
    try {
      const head = new Uint8Array(9)
      const { bytesRead } = await handle.read(head, 0, head.length, 0)
      if (looksLikePickle(head.subarray(0, bytesRead))) return e.name
    } finally {
      await handle.close()
    }
  }
  return null
}

/** Refuses a folder that holds a pickled adapter, naming the file. */
export async function refusePickledAdapter(dir: string): Promise<void> {
  const name = await findPickledFile(dir)
  if (name !== null) invalid(`'${name}': ${PICKLE_REFUSAL}`)
}
