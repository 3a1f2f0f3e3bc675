/**
 * Prompt-learning adapters (PEFT PROMPT_TUNING and P_TUNING) on disk. PEFT's
 * `save_pretrained` writes adapter_config.json and one tensor,
 * `prompt_embeddings` [num_virtual_tokens, token_dim], in input-embedding
 * space. For P_TUNING that tensor is already the prompt encoder's output (PEFT
 * runs the encoder once and saves only the result; the encoder weights are
 * not in the file), so at inference both types are the same P vectors.
 *
 * prefixd stores them as its own self-describing safetensors file:
 * `__metadata__` format "prefixd.<kind>", format_version "1",
 * num_virtual_tokens, hidden_size, model_fingerprint, and the one tensor
 * `prompt_embeddings` [P, hidden_size] in F32.
 */
import { InvalidPrefixError } from '../errors.js'
import type { VirtualEmbeddings } from '../domain/adapter-contribution.js'
import { decodeFloatTensor, encodeF32 } from './dtype-convert.js'
import { serializeSafetensors, type SafetensorsFile } from './safetensors.js'

export const PROMPT_TENSOR = 'prompt_embeddings'
const CONFIG = 'adapter_config.json'
const WEIGHTS = 'adapter_model.safetensors'
const FORMAT_VERSION = '1'

function invalid(message: string): never {
  throw new InvalidPrefixError(message)
}

function positiveInteger(value: unknown, where: string, field: string): number {
  if (value === undefined || value === null) invalid(`${where} has no "${field}"`)
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) invalid(`${where}: "${field}" is ${JSON.stringify(value)}, not a positive integer`)
  return value
}

/** safetensors metadata is string-only: a decimal string becomes its number, anything else stays as is (and is refused). */
function metadataNumber(text: string | undefined): unknown {
  return text !== undefined && /^[1-9][0-9]*$/.test(text) ? Number(text) : text
}

/** The one tensor, [P, hidden] exactly as `expected` says, decoded (finite values only). */
function readEmbeddings(file: SafetensorsFile, where: string, expected: { numVirtualTokens: number; hiddenSize: number }): { embeds: VirtualEmbeddings; dtype: string } {
  const t = file.tensors.get(PROMPT_TENSOR)
  if (t === undefined) {
    const found = [...file.tensors.keys()].map((n) => `'${n}'`).join(', ') || 'no tensors'
    invalid(`${where} has no '${PROMPT_TENSOR}' tensor (found ${found})`)
  }
  const extra = [...file.tensors.keys()].filter((n) => n !== PROMPT_TENSOR)
  if (extra.length > 0) invalid(`${where} holds unexpected tensors besides '${PROMPT_TENSOR}': ${extra.map((n) => `'${n}'`).join(', ')}`)
  const { numVirtualTokens: P, hiddenSize: H } = expected
  if (t.shape.length !== 2 || t.shape[0] !== P || t.shape[1] !== H) {
    invalid(`'${PROMPT_TENSOR}' is [${t.shape.join(', ')}], but num_virtual_tokens ${P} and hidden size ${H} need [${P}, ${H}]`)
  }
  const values = decodeFloatTensor(file.bytesOf(PROMPT_TENSOR), t.dtype, `'${PROMPT_TENSOR}'`)
  return { embeds: { numVirtualTokens: P, hiddenSize: H, values }, dtype: t.dtype }
}

/** Reads PEFT's PROMPT_TUNING / P_TUNING save (its peft_type already matched). */
export function readPeftPromptEmbeddings(config: Record<string, unknown>, weights: SafetensorsFile): { embeds: VirtualEmbeddings; dtype: string } {
  // Encoder-decoder models get two submodules' worth of virtual tokens; prefixd serves decoders only.
  const submodules = config.num_transformer_submodules
  if (submodules !== undefined && submodules !== null && submodules !== 1) {
    invalid(`${CONFIG}: "num_transformer_submodules" is ${JSON.stringify(submodules)}; only decoder-only (1) adapters are accepted`)
  }
  const numVirtualTokens = positiveInteger(config.num_virtual_tokens, CONFIG, 'num_virtual_tokens')
  const hiddenSize = positiveInteger(config.token_dim, CONFIG, 'token_dim')
  return readEmbeddings(weights, WEIGHTS, { numVirtualTokens, hiddenSize })
}

/** Reads prefixd's stored file (its format already matched). */
export function readNativePromptEmbeddings(file: SafetensorsFile, format: string): { embeds: VirtualEmbeddings; dtype: string; modelFingerprint?: string } {
  const meta = file.metadata
  const where = `invalid ${format} file`
  if (meta.format_version !== FORMAT_VERSION) {
    invalid(`${where}: unsupported format_version ${JSON.stringify(meta.format_version ?? null)}; this server reads "${FORMAT_VERSION}"`)
  }
  const numVirtualTokens = positiveInteger(metadataNumber(meta.num_virtual_tokens), `${where}: "__metadata__"`, 'num_virtual_tokens')
  const hiddenSize = positiveInteger(metadataNumber(meta.hidden_size), `${where}: "__metadata__"`, 'hidden_size')
  const read = readEmbeddings(file, where, { numVirtualTokens, hiddenSize })
  return meta.model_fingerprint === undefined ? read : { ...read, modelFingerprint: meta.model_fingerprint }
}

export function writeNativePromptEmbeddings(embeds: VirtualEmbeddings, format: string, modelFingerprint: string): Buffer {
  const { numVirtualTokens: P, hiddenSize: H } = embeds
  if (embeds.values.length !== P * H) throw new InvalidPrefixError(`prompt embeddings hold ${embeds.values.length} values, expected ${P} x ${H}`)
  return serializeSafetensors(
    { [PROMPT_TENSOR]: { dtype: 'F32', shape: [P, H], data: encodeF32(embeds.values) } },
    {
      format,
      format_version: FORMAT_VERSION,
      num_virtual_tokens: String(P),
      hidden_size: String(H),
      model_fingerprint: modelFingerprint,
    },
  )
}
