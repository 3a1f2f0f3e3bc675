/**
 * Applies the graph rewrites a model needs before ONNX Runtime loads it.
 * When none applies, the session is created from the file itself, so a model
 * that needs nothing pays nothing (no second copy in memory).
 */
import type { ModelProto } from 'onnx-buf'
import type { GraphRewrite } from './graph-rewrite.js'
import { allGraphs } from './graph-index.js'
import { encodeModelProto, readModelProto } from './model-proto.js'

export interface DerivedModel {
  /** The file to load as is, or the rewritten model's bytes. */
  source: string | Uint8Array
  /** Names of the rewrites applied, in order. */
  applied: string[]
  /** Every operator type in the graph, nested graphs included (what the graph computes with). */
  opTypes: ReadonlySet<string>
  /**
   * Files the model keeps its weights in (ONNX external data, `location`
   * relative to the model file): rewritten bytes must be loaded beside them.
   */
  externalDataFiles: string[]
}

function opTypesOf(model: ModelProto): Set<string> {
  const types = new Set<string>()
  if (!model.graph) return types
  for (const g of allGraphs(model.graph)) for (const n of g.node) types.add(n.opType)
  return types
}

function externalDataFilesOf(model: ModelProto): string[] {
  const files = new Set<string>()
  if (!model.graph) return []
  for (const g of allGraphs(model.graph)) {
    for (const t of g.initializer) {
      const location = t.externalData.find((e) => e.key === 'location')?.value
      if (location !== undefined) files.add(location)
    }
  }
  return [...files]
}

export async function deriveModel(file: string, rewrites: readonly GraphRewrite[]): Promise<DerivedModel> {
  const model = await readModelProto(file)
  const applied: string[] = []
  for (const rewrite of rewrites) {
    if (!rewrite.needed(model)) continue
    rewrite.apply(model)
    applied.push(rewrite.name)
  }
  const facts = { applied, opTypes: opTypesOf(model), externalDataFiles: externalDataFilesOf(model) }
  return { source: applied.length === 0 ? file : encodeModelProto(model), ...facts }
}
