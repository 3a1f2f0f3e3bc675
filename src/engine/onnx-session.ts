/**
 * Creates the ONNX Runtime session for a model folder. Only the engine worker
 * calls this: onnxruntime-node's run() blocks its thread, and the library is
 * known to crash when several workers load it.
 */
import { access } from 'node:fs/promises'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { ModelLoadError } from './model-load-error.js'
import { deriveModel, type DerivedModel } from './graph/derive-model.js'
import { externalDataFolderEntry, externalDataFolderOption } from './graph/external-data.js'
import type { GraphRewrite } from './graph/graph-rewrite.js'
import { withPresentInPlace } from './graph/present-in-place.js'
import { MODEL_REWRITES } from './graph/rewrites.js'
import { CApiSession } from './session/capi-session.js'
import { nodePassSession, type PassSession } from './session/pass-session.js'

/** File names of the optimum layout, most preferred first. */
const MODEL_FILES = ['model.onnx', 'decoder_model_merged.onnx']

export async function findModelFile(modelDir: string): Promise<string> {
  for (const name of MODEL_FILES) {
    const path = join(modelDir, name)
    try {
      await access(path)
      return path
    } catch {
      // try the next name
    }
  }
  throw new ModelLoadError(`no ${MODEL_FILES.join(' or ')} in ${modelDir}`)
}

/**
 * ORT_BINDING: how the engine drives ONNX Runtime. `capi`: its C API
 * (session/capi-session.ts), whose IO binding lets decode passes write the key/value cache in
 * place; CPU only. `node`: onnxruntime-node. `auto`: the C API on the CPU
 * where it loads, else onnxruntime-node.
 */
export type OrtBinding = 'auto' | 'capi' | 'node'

export interface SessionOptions {
  executionProvider: 'cpu' | 'cuda'
  intraOpThreads: number
  /** Default `auto`, as the server's. */
  ortBinding?: OrtBinding
  /** The graph rewrites to consider (default: all of MODEL_REWRITES); [] loads the file as it is. */
  rewrites?: readonly GraphRewrite[]
}

/** ONNX Runtime options for every session the engine opens. */
export function sessionOptions(opts: SessionOptions): ort.InferenceSession.SessionOptions {
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: opts.executionProvider === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    graphOptimizationLevel: 'all',
    // One forward pass at a time: parallelism comes from the batch, inside each op.
    interOpNumThreads: 1,
  }
  if (opts.intraOpThreads > 0) options.intraOpNumThreads = opts.intraOpThreads
  return options
}

export interface ModelSession {
  session: PassSession
  /** What deriving the graph found and did (rewrites applied, operator types). */
  derived: Omit<DerivedModel, 'source'>
}

/** Whether this process can drive ONNX Runtime through its C API (the library loads), with the reason when not. */
function cApiAvailable(): { ok: true } | { ok: false; why: string } {
  try {
    CApiSession.libraryVersion()
    return { ok: true }
  } catch (err) {
    return { ok: false, why: (err as Error).message }
  }
}

/** The binding a session is opened with: `auto` resolved, `capi` refused where it cannot run. */
export function resolveBinding(opts: SessionOptions): 'capi' | 'node' {
  const asked = opts.ortBinding ?? 'auto'
  if (asked === 'node') return 'node'
  if (opts.executionProvider !== 'cpu') {
    if (asked === 'auto') return 'node'
    throw new ModelLoadError(`ORT_BINDING=capi runs on the CPU execution provider only, not ${opts.executionProvider}`)
  }
  const available = cApiAvailable()
  if (available.ok) return 'capi'
  if (asked === 'auto') return 'node'
  throw new ModelLoadError(`ORT_BINDING=capi: ONNX Runtime's C API cannot be loaded: ${available.why}`)
}

export async function createSession(modelDir: string, opts: SessionOptions): Promise<ModelSession> {
  const file = await findModelFile(modelDir)
  const binding = resolveBinding(opts)
  const rewrites = opts.rewrites ?? MODEL_REWRITES
  let derivedModel: DerivedModel
  try {
    derivedModel = await deriveModel(file, binding === 'capi' ? withPresentInPlace(rewrites) : rewrites)
  } catch (err) {
    throw new ModelLoadError(`cannot derive the serving graph from ${file}: ${(err as Error).message}`)
  }
  const { source, ...derived } = derivedModel
  // Rewritten bytes have no folder of their own: name the one holding their weights.
  const external = typeof source !== 'string' && derived.externalDataFiles.length > 0
  try {
    if (binding === 'capi') {
      const configEntries = external ? [externalDataFolderEntry(file)] : []
      return { session: CApiSession.create(source, { intraOpThreads: opts.intraOpThreads, configEntries }), derived }
    }
    const options = sessionOptions(opts)
    if (external) options.extra = externalDataFolderOption(file)
    // Two overloads (path or bytes): call the one that matches.
    const session =
      typeof source === 'string' ? await ort.InferenceSession.create(source, options) : await ort.InferenceSession.create(source, options)
    return { session: nodePassSession(session), derived }
  } catch (err) {
    throw new ModelLoadError(`ONNX Runtime cannot load ${file}: ${(err as Error).message}`)
  }
}
