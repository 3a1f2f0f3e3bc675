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
import { externalDataFolderOption } from './graph/external-data.js'
import { MODEL_REWRITES } from './graph/rewrites.js'

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

export interface SessionOptions {
  executionProvider: 'cpu' | 'cuda'
  intraOpThreads: number
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
  session: ort.InferenceSession
  /** What deriving the graph found and did (rewrites applied, operator types). */
  derived: Omit<DerivedModel, 'source'>
}

export async function createSession(modelDir: string, opts: SessionOptions): Promise<ModelSession> {
  const file = await findModelFile(modelDir)
  const options = sessionOptions(opts)
  let derivedModel: DerivedModel
  try {
    derivedModel = await deriveModel(file, MODEL_REWRITES)
  } catch (err) {
    throw new ModelLoadError(`cannot derive the serving graph from ${file}: ${(err as Error).message}`)
  }
  const { source, ...derived } = derivedModel
  // Rewritten bytes have no folder of their own: name the one holding their weights.
  if (typeof source !== 'string' && derived.externalDataFiles.length > 0) options.extra = externalDataFolderOption(file)
  try {
    // Two overloads (path or bytes): call the one that matches.
    const session =
      typeof source === 'string' ? await ort.InferenceSession.create(source, options) : await ort.InferenceSession.create(source, options)
    return { session, derived }
  } catch (err) {
    throw new ModelLoadError(`ONNX Runtime cannot load ${file}: ${(err as Error).message}`)
  }
}
