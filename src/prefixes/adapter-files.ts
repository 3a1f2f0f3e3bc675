/**
 * Reads an adapter of any kind from its files: PEFT's pair (adapter_config.json
 * + adapter_model.safetensors, whose peft_type picks the kind) or prefixd's own
 * stored file (whose `format` metadata picks it). Uploads and prefix folders
 * both come through here, so both accept exactly the same adapters.
 */
import { InvalidPrefixError } from '../errors.js'
import type { AdapterContribution } from '../domain/adapter-contribution.js'
import type { ModelArchitecture } from '../domain/model-spec.js'
import { looksLikePickle, parseAdapterConfigJson, PICKLE_REFUSAL } from './peft-adapter.js'
import { parseSafetensors, type ParseOptions } from './safetensors.js'
import type { AdapterKindName } from './adapter-kind.js'
import { kindForNativeFormat, kindForPeftType } from './adapter-kinds.js'

export interface LoadedAdapter {
  kind: AdapterKindName
  contribution: AdapterContribution
  format: 'peft' | 'native'
  /** The dtype the values were stored in (F32, F16 or BF16). */
  dtype: string
  /** From a native file's metadata, when it has one. */
  modelFingerprint?: string
  /** The kind of model it was trained for, when its files say (PEFT's task type). */
  architecture?: ModelArchitecture
}

export function readPeftFiles(config: Uint8Array | string, weights: Uint8Array, opts: ParseOptions = {}): LoadedAdapter {
  if (looksLikePickle(weights)) throw new InvalidPrefixError(PICKLE_REFUSAL)
  const json = parseAdapterConfigJson(config)
  const kind = kindForPeftType(json.peft_type)
  const { contribution, dtype, architecture } = kind.readPeft(json, parseSafetensors(weights, opts))
  const loaded: LoadedAdapter = { kind: kind.name, contribution, format: 'peft', dtype }
  if (architecture !== undefined) loaded.architecture = architecture
  return loaded
}

export function readNativeFile(bytes: Uint8Array, opts: ParseOptions = {}): LoadedAdapter {
  const file = parseSafetensors(bytes, opts)
  const kind = kindForNativeFormat(file.metadata.format)
  const { contribution, dtype, modelFingerprint } = kind.readNative(file)
  const loaded: LoadedAdapter = { kind: kind.name, contribution, format: 'native', dtype }
  if (modelFingerprint !== undefined) loaded.modelFingerprint = modelFingerprint
  return loaded
}
