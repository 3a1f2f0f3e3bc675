/**
 * Turns what a tenant uploads (a PEFT adapter's two files, or one native
 * prefix file) into the one thing the store keeps: a native prefix blob (F32,
 * with the model's fingerprint), validated end to end before a byte is
 * written. Folder imports at start-up go through the same checks.
 */
import { InvalidPrefixError, PayloadTooLargeError, PrefixShapeMismatchError } from '../../errors.js'
import { architectureOf, type ModelSpec } from '../../domain/model-spec.js'
import { NATIVE_FILE, readNativePrefix, writeNativePrefix } from '../native-format.js'
import { looksLikePickle, PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, PICKLE_REFUSAL, readPeftAdapter } from '../peft-adapter.js'
import type { LoadedPrefix } from '../prefix-folder.js'
import { assertArchitectureFits, assertPrefixFitsModel, assertVirtualTokensFit } from '../shape-check.js'
import { sha256Hex } from './blob-files.js'
import { modelFingerprint } from './model-fingerprint.js'

export interface UploadedFile {
  filename: string
  data: Buffer
}

export interface StoredBlob {
  blob: Buffer
  sha256: string
  format: 'peft' | 'native'
  dtype: string
  numVirtualTokens: number
  numLayers: number
  numKvHeads: number
  headDim: number
}

/** Names pickled weights go by (PyTorch, PEFT's adapter_model.bin, pickle dumps). */
const PICKLE_NAME = /\.(bin|pt|pth|pkl|pickle|ckpt)$/i
/** PEFT's save_pretrained writes a model card beside the adapter: accepted and ignored. */
const IGNORED_FILES = new Set(['README.md'])
const ACCEPTED = `'${PEFT_CONFIG_FILE}' + '${PEFT_WEIGHTS_FILE}' (PEFT) or '${NATIVE_FILE}'`

/** Refuses pickles by name and by content, and anything over the size limit. */
function screenFile(file: UploadedFile, maxFileBytes: number): void {
  if (PICKLE_NAME.test(file.filename) || looksLikePickle(file.data.subarray(0, 9))) {
    throw new InvalidPrefixError(`'${file.filename}': ${PICKLE_REFUSAL}`)
  }
  if (file.data.length > maxFileBytes) {
    throw new PayloadTooLargeError(`'${file.filename}' is ${file.data.length} bytes, over the limit of ${maxFileBytes} bytes`)
  }
}

/** Parses the uploaded files into a prefix, whichever format they are in; never guesses between two. */
export function parseUpload(files: UploadedFile[], maxFileBytes: number): LoadedPrefix {
  const byName = new Map<string, Buffer>()
  for (const file of files) {
    screenFile(file, maxFileBytes)
    if (IGNORED_FILES.has(file.filename)) continue
    if (![PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, NATIVE_FILE].includes(file.filename)) {
      throw new InvalidPrefixError(`unexpected file '${file.filename}'; upload ${ACCEPTED}`)
    }
    if (byName.has(file.filename)) throw new InvalidPrefixError(`'${file.filename}' was uploaded twice`)
    byName.set(file.filename, file.data)
  }
  const native = byName.get(NATIVE_FILE)
  const config = byName.get(PEFT_CONFIG_FILE)
  const weights = byName.get(PEFT_WEIGHTS_FILE)
  if (native !== undefined) {
    if (config !== undefined || weights !== undefined) {
      throw new InvalidPrefixError(`ambiguous upload: both '${NATIVE_FILE}' and PEFT files; send one format`)
    }
    const { prefix, dtype, metadata } = readNativePrefix(native)
    const loaded: LoadedPrefix = { prefix, format: 'native', dtype }
    if (metadata.modelFingerprint !== undefined) loaded.modelFingerprint = metadata.modelFingerprint
    return loaded
  }
  if (config === undefined && weights === undefined) throw new InvalidPrefixError(`no prefix files: upload ${ACCEPTED}`)
  if (config === undefined || weights === undefined) {
    const [present, missing] = config !== undefined ? [PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE] : [PEFT_WEIGHTS_FILE, PEFT_CONFIG_FILE]
    throw new InvalidPrefixError(`incomplete PEFT adapter: '${present}' is there but '${missing}' is missing`)
  }
  const { prefix, dtype, config: cfg } = readPeftAdapter(config, weights)
  return { prefix, format: 'peft', dtype, architecture: cfg.architecture }
}

/** Checks a parsed prefix against the loaded model and writes it as the blob the store keeps. */
export function toStoredBlob(loaded: LoadedPrefix, spec: ModelSpec, id: string): StoredBlob {
  const { prefix } = loaded
  if (loaded.architecture !== undefined) assertArchitectureFits(loaded.architecture, architectureOf(spec), id)
  assertPrefixFitsModel(prefix, spec, id)
  assertVirtualTokensFit(prefix.numVirtualTokens, { maxVirtualTokens: spec.maxPositions - 1, maxPositions: spec.maxPositions }, id)
  const fingerprint = modelFingerprint(spec)
  if (loaded.modelFingerprint !== undefined && loaded.modelFingerprint !== fingerprint) {
    throw new PrefixShapeMismatchError(
      `prefix '${id}' was made for another model (model_fingerprint ${loaded.modelFingerprint}); this server's model is ${fingerprint}`,
    )
  }
  const blob = writeNativePrefix(prefix, { modelFingerprint: fingerprint })
  return {
    blob,
    sha256: sha256Hex(blob),
    format: loaded.format,
    dtype: loaded.dtype,
    numVirtualTokens: prefix.numVirtualTokens,
    numLayers: prefix.numLayers,
    numKvHeads: prefix.numKvHeads,
    headDim: prefix.headDim,
  }
}
