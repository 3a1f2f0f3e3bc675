/**
 * One adapter on disk (a prefix, or any other kind) is one folder holding either a PEFT adapter, as
 * `save_pretrained` writes it (adapter_config.json + adapter_model.safetensors;
 * PEFT's README.md beside them is ignored), or one native `prefix.safetensors`.
 * Never both: a folder that could be read two ways is refused rather than
 * guessed at. Sizes are checked on the open file handle before reading, so an
 * oversized file is refused without being loaded into memory.
 */
import { open, readdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { InvalidPrefixError, PayloadTooLargeError, PrefixNotFoundError } from '../errors.js'
import { readNativeFile, readPeftFiles, type LoadedAdapter } from './adapter-files.js'
import { NATIVE_FILE } from './native-format.js'
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, refusePickledAdapter } from './peft-adapter.js'

export interface LoadPrefixOptions {
  /** Largest file accepted, in bytes; larger files raise PayloadTooLargeError. */
  maxFileBytes: number
  /** Largest safetensors JSON header accepted (default 1 MiB). */
  maxHeaderBytes?: number
}


function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

/** Reads one file, refusing non-files and anything over the limit (checked before and after reading). */
async function readLimited(dir: string, name: string, maxBytes: number): Promise<Buffer> {
  let handle
  try {
    handle = await open(join(dir, name), 'r')
  } catch (err) {
    throw new InvalidPrefixError(`cannot open '${name}' (${errnoCode(err) ?? 'unknown error'})`)
  }
  try {
    const stat = await handle.stat()
    if (!stat.isFile()) throw new InvalidPrefixError(`'${name}' is not a regular file`)
    const tooLarge = (size: number) => new PayloadTooLargeError(`'${name}' is ${size} bytes, over the limit of ${maxBytes} bytes`)
    if (stat.size > maxBytes) throw tooLarge(stat.size)
    const data = await handle.readFile()
    // The file may have grown between stat and read.
    if (data.length > maxBytes) throw tooLarge(data.length)
    return data
  } finally {
    await handle.close()
  }
}

async function listFolder(dir: string): Promise<Set<string>> {
  try {
    return new Set(await readdir(dir))
  } catch (err) {
    const code = errnoCode(err)
    if (code === 'ENOENT') throw new PrefixNotFoundError(basename(dir))
    if (code === 'ENOTDIR') throw new InvalidPrefixError(`'${basename(dir)}' is not a prefix folder`)
    throw err
  }
}

/** Loads and validates the adapter stored in `dir`, whichever kind and of the two formats it is in. */
export async function loadPrefixFolder(dir: string, opts: LoadPrefixOptions): Promise<LoadedAdapter> {
  const names = await listFolder(dir)
  await refusePickledAdapter(dir)
  const parseOpts = opts.maxHeaderBytes === undefined ? {} : { maxHeaderBytes: opts.maxHeaderBytes }

  const hasConfig = names.has(PEFT_CONFIG_FILE)
  const hasWeights = names.has(PEFT_WEIGHTS_FILE)
  const hasNative = names.has(NATIVE_FILE)
  if (hasNative && (hasConfig || hasWeights)) {
    throw new InvalidPrefixError(
      `ambiguous prefix folder: it holds both '${NATIVE_FILE}' and PEFT files; keep one format`,
    )
  }
  if (hasNative) return readNativeFile(await readLimited(dir, NATIVE_FILE, opts.maxFileBytes), parseOpts)
  if (hasConfig !== hasWeights) {
    const [present, missing] = hasConfig ? [PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE] : [PEFT_WEIGHTS_FILE, PEFT_CONFIG_FILE]
    throw new InvalidPrefixError(`incomplete PEFT adapter: '${present}' is there but '${missing}' is missing`)
  }
  if (!hasConfig) {
    throw new InvalidPrefixError(
      `no prefix files: expected '${PEFT_CONFIG_FILE}' + '${PEFT_WEIGHTS_FILE}' (PEFT) or '${NATIVE_FILE}'`,
    )
  }
  const configBytes = await readLimited(dir, PEFT_CONFIG_FILE, opts.maxFileBytes)
  const weights = await readLimited(dir, PEFT_WEIGHTS_FILE, opts.maxFileBytes)
  return readPeftFiles(configBytes, weights, parseOpts)
}
