/**
 * How the store keeps a LoRA adapter: one self-describing safetensors blob,
 * like a native prefix. `__metadata__` carries format "prefixd.lora",
 * format_version "1", rank, lora_alpha, use_rslora, scaling, target_modules
 * (JSON) and optionally model_fingerprint; per module two F32 tensors,
 * `<key>.A` [in, r] (lora_Aᵀ) and `<key>.B` [r, out] (scaling · lora_Bᵀ): the
 * layout a forward pass multiplies, so loading it is a copy, not a transpose.
 * Everything is checked again on read (shapes, rank, finiteness): a blob may
 * come from Redis or another replica.
 */
import { InvalidPrefixError } from '../errors.js'
import { decodeFloatTensor, encodeF32 } from './dtype-convert.js'
import type { LoraAdapter, LoraModule } from '../domain/lora-weights.js'
import type { LoraConfig } from '../domain/lora-weights.js'
import { moduleKeyOf } from '../domain/lora-module-key.js'
import { parseSafetensors, serializeSafetensors, type SafetensorsFile, type TensorToWrite } from './safetensors.js'

export const LORA_NATIVE_FORMAT = 'prefixd.lora'
const VERSION = '1'

function invalid(message: string): never {
  throw new InvalidPrefixError(`invalid ${LORA_NATIVE_FORMAT} file: ${message}`)
}

export function writeNativeLora(adapter: LoraAdapter, opts: { modelFingerprint?: string } = {}): Buffer {
  const c = adapter.config
  const metadata: Record<string, string> = {
    format: LORA_NATIVE_FORMAT,
    format_version: VERSION,
    rank: String(c.rank),
    lora_alpha: String(c.alpha),
    use_rslora: String(c.useRslora),
    scaling: String(c.scaling),
    target_modules: JSON.stringify(c.targetModules),
  }
  if (opts.modelFingerprint !== undefined) metadata.model_fingerprint = opts.modelFingerprint
  const tensors: Record<string, TensorToWrite> = {}
  for (const m of adapter.modules) {
    tensors[`${m.key}.A`] = { dtype: 'F32', shape: [m.inFeatures, adapter.rank], data: encodeF32(m.a) }
    tensors[`${m.key}.B`] = { dtype: 'F32', shape: [adapter.rank, m.outFeatures], data: encodeF32(m.b) }
  }
  return serializeSafetensors(tensors, metadata)
}

function number(meta: Record<string, string>, key: string): number {
  const n = Number(meta[key])
  if (meta[key] === undefined || !Number.isFinite(n)) invalid(`"__metadata__" "${key}" is ${JSON.stringify(meta[key] ?? null)}`)
  return n
}

export interface NativeLora {
  adapter: LoraAdapter
  modelFingerprint?: string
}

export function readNativeLora(source: Uint8Array | SafetensorsFile): NativeLora {
  const file = source instanceof Uint8Array ? parseSafetensors(source) : source
  const meta = file.metadata
  if (meta.format !== LORA_NATIVE_FORMAT) invalid(`"format" is ${JSON.stringify(meta.format ?? null)}`)
  if (meta.format_version !== VERSION) invalid(`unsupported format_version ${JSON.stringify(meta.format_version ?? null)}`)
  const rank = number(meta, 'rank')
  if (!Number.isSafeInteger(rank) || rank <= 0) invalid(`rank ${rank} is not a positive integer`)
  let targetModules: unknown
  try {
    targetModules = JSON.parse(meta.target_modules ?? '')
  } catch {
    invalid('"target_modules" is not JSON')
  }
  const config: LoraConfig = {
    rank,
    alpha: number(meta, 'lora_alpha'),
    useRslora: meta.use_rslora === 'true',
    scaling: number(meta, 'scaling'),
    targetModules: targetModules as string[] | string,
  }
  const modules: LoraModule[] = []
  for (const [name, a] of file.tensors) {
    if (!name.endsWith('.A')) continue
    const key = name.slice(0, -2)
    const b = file.tensors.get(`${key}.B`)
    if (!b || moduleKeyOf(key) !== key) invalid(`tensor '${name}' has no '${key}.B' or is not a module key`)
    if (a.shape.length !== 2 || b.shape.length !== 2 || a.shape[1] !== rank || b.shape[0] !== rank) {
      invalid(`'${key}' is A [${a.shape.join(', ')}], B [${b.shape.join(', ')}] for rank ${rank}`)
    }
    modules.push({
      key,
      inFeatures: a.shape[0],
      outFeatures: b.shape[1],
      a: decodeFloatTensor(file.bytesOf(name), a.dtype, `'${name}'`),
      b: decodeFloatTensor(file.bytesOf(`${key}.B`), b.dtype, `'${key}.B'`),
    })
  }
  if (modules.length === 0 || modules.length * 2 !== file.tensors.size) invalid('tensors must be <key>.A / <key>.B pairs, at least one')
  modules.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0))
  const out: NativeLora = { adapter: { config, rank, modules, dtype: 'F32' } }
  if (meta.model_fingerprint !== undefined) out.modelFingerprint = meta.model_fingerprint
  return out
}
