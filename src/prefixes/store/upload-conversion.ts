/**
 * Turns what a tenant uploads (a PEFT adapter's two files, or one native
 * prefixd file) into the one thing the store keeps: the kind's native blob
 * (F32, with the model's fingerprint), validated end to end before a byte is
 * written. Folder imports at start-up go through the same checks.
 */
import { InvalidPrefixError, PayloadTooLargeError, PrefixShapeMismatchError } from '../../errors.js'
import { contributionPositions } from '../../domain/adapter-contribution.js'
import type { AdapterKindName, AdapterShapeFields, ServedModel } from '../adapter-kind.js'
import { readNativeFile, readPeftFiles, type LoadedAdapter } from '../adapter-files.js'
import { kindNamed } from '../adapter-kinds.js'
import { assertServableMagnitude } from '../magnitude-bound.js'
import { NATIVE_FILE } from '../native-format.js'
import { looksLikePickle, PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, PICKLE_REFUSAL } from '../peft-adapter.js'
import { assertArchitectureFits, assertVirtualTokensFit } from '../shape-check.js'
import { architectureOf } from '../../domain/model-spec.js'
import { sha256Hex } from './blob-files.js'
import { modelFingerprint } from './model-fingerprint.js'

export interface UploadedFile {
  filename: string
  data: Buffer
}

export interface StoredBlob {
  blob: Buffer
  sha256: string
  kind: AdapterKindName
  format: 'peft' | 'native'
  dtype: string
  shape: AdapterShapeFields
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

/** Parses the uploaded files into an adapter, whichever kind and format they are in; never guesses between two. */
export function parseUpload(files: UploadedFile[], maxFileBytes: number): LoadedAdapter {
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
    return readNativeFile(native)
  }
  if (config === undefined && weights === undefined) throw new InvalidPrefixError(`no prefix files: upload ${ACCEPTED}`)
  if (config === undefined || weights === undefined) {
    const [present, missing] = config !== undefined ? [PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE] : [PEFT_WEIGHTS_FILE, PEFT_CONFIG_FILE]
    throw new InvalidPrefixError(`incomplete PEFT adapter: '${present}' is there but '${missing}' is missing`)
  }
  return readPeftFiles(config, weights)
}

/** Checks a parsed adapter against the loaded model and writes it as the blob the store keeps. */
export function toStoredBlob(loaded: LoadedAdapter, model: ServedModel, id: string): StoredBlob {
  const kind = kindNamed(loaded.kind)
  const { spec } = model
  if (loaded.architecture !== undefined) assertArchitectureFits(loaded.architecture, architectureOf(spec), id)
  kind.assertServable(loaded.contribution, model, id)
  assertServableMagnitude(loaded.contribution, id)
  assertVirtualTokensFit(contributionPositions(loaded.contribution), { maxVirtualTokens: spec.maxPositions - 1, maxPositions: spec.maxPositions }, id)
  const fingerprint = modelFingerprint(spec)
  if (loaded.modelFingerprint !== undefined && loaded.modelFingerprint !== fingerprint) {
    throw new PrefixShapeMismatchError(
      `prefix '${id}' was made for another model (model_fingerprint ${loaded.modelFingerprint}); this server's model is ${fingerprint}`,
    )
  }
  const blob = kind.writeNative(loaded.contribution, fingerprint)
  return {
    blob,
    sha256: sha256Hex(blob),
    kind: kind.name,
    format: loaded.format,
    dtype: loaded.dtype,
    shape: kind.shapeFields(loaded.contribution),
  }
}
