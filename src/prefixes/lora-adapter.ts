/**
 * A PEFT LoRA adapter as `save_pretrained` writes it: adapter_config.json and
 * adapter_model.safetensors holding, per targeted Linear,
 * `base_model.model.<module path>.lora_A.weight` [r, in] and `.lora_B.weight`
 * [out, r]. Read into what one forward pass multiplies: Aᵀ [in, r] and
 * s·Bᵀ [r, out] (s = PEFT's scaling, folded in once here instead of once per
 * step), so a row's update is (x·Aᵀ)·(s·Bᵀ) = s·(x Aᵀ) Bᵀ, PEFT's formula.
 *
 * Which projections the model has, and their sizes, is a property of the
 * loaded graph (see src/engine/graph/lora-projections.ts): checkLoraFitsModel
 * refuses an adapter for modules the model lacks or of the wrong size.
 */
import { InvalidPrefixError, PrefixShapeMismatchError } from '../errors.js'
import { decodeFloatTensor } from './dtype-convert.js'
import { parseLoraConfig } from './lora-config.js'
import type { LoraConfig } from '../domain/lora-weights.js'
import { leafOfKey, moduleKeyOf } from '../domain/lora-module-key.js'
import type { LoraAdapter, LoraModule, LoraProjection } from '../domain/lora-weights.js'
import { looksLikePickle, PICKLE_REFUSAL } from './peft-adapter.js'
import { parseSafetensors, type ParseOptions, type SafetensorsFile, type TensorInfo } from './safetensors.js'

export type { LoraAdapter, LoraModule, LoraProjection } from '../domain/lora-weights.js'
export { loraAdapterBytes } from '../domain/lora-weights.js'

const WEIGHTS = 'adapter_model.safetensors'
const SAVED = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/

function invalid(message: string): never {
  throw new InvalidPrefixError(message)
}

/** Names the kind of a tensor prefixd will not serve, so the refusal says why. */
function whyUnservable(name: string): string {
  if (name.includes('lora_magnitude_vector')) return 'a DoRA magnitude vector (use_dora)'
  if (name.includes('lora_embedding_')) return 'a LoRA on an embedding layer, which is not served'
  if (name.includes('modules_to_save') || name.includes('original_module')) return 'a module_to_save copy'
  if (/\.bias$/.test(name)) return 'a trained bias'
  return 'not a lora_A/lora_B weight of a layer'
}

function transpose(src: Float32Array, rows: number, cols: number, scale: number): Float32Array {
  const out = new Float32Array(rows * cols)
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = src[i * cols + j] * scale
  return out
}

/** Groups the saved tensors by module, refusing anything that is not a layer's lora_A/lora_B. */
function pairTensors(tensors: Map<string, TensorInfo>): Map<string, { path: string; A?: TensorInfo; B?: TensorInfo }> {
  const byKey = new Map<string, { path: string; A?: TensorInfo; B?: TensorInfo }>()
  for (const [name, info] of tensors) {
    const m = SAVED.exec(name)
    const key = m ? moduleKeyOf(m[1]) : null
    if (!m || key === null) invalid(`${WEIGHTS}: tensor '${name}' is ${whyUnservable(name)}`)
    const entry = byKey.get(key) ?? { path: m[1] }
    if (entry.path !== m[1]) invalid(`${WEIGHTS}: '${entry.path}' and '${m[1]}' are the same layer module twice`)
    entry[m[2] as 'A' | 'B'] = info
    byKey.set(key, entry)
  }
  if (byKey.size === 0) invalid(`${WEIGHTS} holds no lora_A/lora_B tensors`)
  return byKey
}

/** Reads and validates a PEFT LoRA adapter from its config and weights bytes. */
export function readLoraAdapter(config: Uint8Array | string | unknown, weights: Uint8Array, opts: ParseOptions = {}): LoraAdapter {
  if (looksLikePickle(weights)) invalid(PICKLE_REFUSAL)
  return readLoraTensors(parseLoraConfig(config), parseSafetensors(weights, opts))
}

/** The adapter from a validated config and its parsed (already validated) safetensors file. */
export function readLoraTensors(cfg: LoraConfig, file: SafetensorsFile): LoraAdapter {
  const modules: LoraModule[] = []
  const dtypes = new Set<string>()
  for (const [key, { path, A, B }] of pairTensors(file.tensors)) {
    if (!A || !B) invalid(`${WEIGHTS}: '${path}' has lora_${A ? 'A' : 'B'} but no lora_${A ? 'B' : 'A'}`)
    if (A.shape.length !== 2 || B.shape.length !== 2) {
      invalid(`${WEIGHTS}: '${path}' lora_A is [${A.shape.join(', ')}] and lora_B [${B.shape.join(', ')}]; both must be 2-D`)
    }
    const [rankA, inFeatures] = A.shape
    const [outFeatures, rankB] = B.shape
    if (rankA !== cfg.rank || rankB !== cfg.rank) {
      invalid(`${WEIGHTS}: '${path}' has rank ${rankA} (lora_A) / ${rankB} (lora_B), but r is ${cfg.rank}`)
    }
    if (inFeatures === 0 || outFeatures === 0) invalid(`${WEIGHTS}: '${path}' has an empty dimension`)
    const a = decodeFloatTensor(file.bytesOf(A.name), A.dtype, `'${A.name}'`)
    const b = decodeFloatTensor(file.bytesOf(B.name), B.dtype, `'${B.name}'`)
    dtypes.add(A.dtype).add(B.dtype)
    modules.push({
      key,
      inFeatures,
      outFeatures,
      a: transpose(a, cfg.rank, inFeatures, 1),
      b: transpose(b, outFeatures, cfg.rank, cfg.scaling),
    })
  }
  modules.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0))
  return { config: cfg, rank: cfg.rank, modules, dtype: [...dtypes].join('+') }
}

/** PEFT's list form: a module matches a name when its path is the name or ends in ".name". */
function matchesTarget(key: string, name: string): boolean {
  return key === name || key.endsWith(`.${name}`)
}

/**
 * Refuses an adapter that does not fit the loaded model: a module the model
 * has no projection for, a projection of another size, or a target_modules
 * entry naming no projection of the model. Every mismatch is named.
 */
export function checkLoraFitsModel(adapter: LoraAdapter, projections: readonly LoraProjection[], adapterId?: string): void {
  const who = adapterId === undefined ? 'LoRA adapter' : `LoRA adapter '${adapterId}'`
  const byKey = new Map(projections.map((p) => [p.key, p]))
  const leaves = [...new Set(projections.map((p) => leafOfKey(p.key)))]
  const problems: string[] = []
  const { targetModules } = adapter.config
  if (Array.isArray(targetModules)) {
    const missing = targetModules.filter((name) => !projections.some((p) => matchesTarget(p.key, name)))
    if (missing.length > 0) problems.push(`targets ${missing.map((m) => `'${m}'`).join(', ')}, which the model does not have or takes no LoRA on (LoRA can target: ${leaves.join(', ') || 'nothing'}; LORA_TARGET_MODULES chooses)`)
  }
  for (const m of adapter.modules) {
    const p = byKey.get(m.key)
    if (!p) {
      problems.push(`has weights for '${m.key}', which the model does not have or takes no LoRA on`)
      continue
    }
    if (Array.isArray(targetModules) && !targetModules.some((name) => matchesTarget(m.key, name))) {
      problems.push(`has weights for '${m.key}', which target_modules does not list`)
    }
    if (p.inFeatures !== m.inFeatures || p.outFeatures !== m.outFeatures) {
      problems.push(`'${m.key}' is ${m.inFeatures} → ${m.outFeatures}, the model's is ${p.inFeatures} → ${p.outFeatures}`)
    }
  }
  if (problems.length > 0) throw new PrefixShapeMismatchError(`${who} ${problems.slice(0, 8).join('; ')}`)
}
