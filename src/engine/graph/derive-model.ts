/**
 * Applies the graph rewrites a model needs before ONNX Runtime loads it.
 * When none applies, the session is created from the file itself, so a model
 * that needs nothing pays nothing (no parse, no second copy in memory).
 */
import type { GraphRewrite } from './graph-rewrite.js'
import { encodeModelProto, readModelProto } from './model-proto.js'

export interface DerivedModel {
  /** The file to load as is, or the rewritten model's bytes. */
  source: string | Uint8Array
  /** Names of the rewrites applied, in order. */
  applied: string[]
}

export async function deriveModel(file: string, rewrites: readonly GraphRewrite[]): Promise<DerivedModel> {
  if (rewrites.length === 0) return { source: file, applied: [] }
  const model = await readModelProto(file)
  const applied: string[] = []
  for (const rewrite of rewrites) {
    if (!rewrite.needed(model)) continue
    rewrite.apply(model)
    applied.push(rewrite.name)
  }
  return applied.length === 0 ? { source: file, applied } : { source: encodeModelProto(model), applied }
}
