/**
 * Finds, in an exported decoder graph, the Linear projections a LoRA can
 * target: a MatMul or Gemm whose weight is a 2-D initializer, inside a
 * numbered layer. Found by structure, then named by the module path the
 * exporter left in the node name (`/model/layers.0/self_attn/q_proj/MatMul`)
 * or in the weight's name (`transformer.h.0.attn.c_attn.weight`), so any
 * family works whose projections look like this: Llama's q/k/v/o/gate/up/down,
 * GPT-2's Conv1D c_attn/c_proj/c_fc (exported as Gemm, or MatMul + Add), and
 * others (Qwen2, Phi-3's fused qkv_proj, ...). Subgraphs (the merged decoder's
 * If branches) are searched too; a module found in several places is one key.
 */
import { TensorProto_DataType, type GraphProto, type NodeProto, type TensorProto } from 'onnx-buf'
import { moduleKeyOf } from '../../domain/lora-module-key.js'
import { intAttribute } from './graph-edit.js'
import type { LoraProjection } from '../../domain/lora-weights.js'

export interface ProjectionSite {
  graph: GraphProto
  node: NodeProto
}

export interface GraphProjection extends LoraProjection {
  /** Every node computing this module (one, or one per branch of a merged decoder). */
  sites: ProjectionSite[]
  /** The weight's element type (float32, or float16 / bfloat16 in a half-precision export). */
  elemType: number
}

/** `/model/layers.0/self_attn/q_proj/MatMul` → `model.layers.0.self_attn.q_proj` (the op's own name dropped). */
function pathOfNodeName(name: string): string {
  const parts = name.split('/').filter((p) => p.length > 0)
  return parts.slice(0, -1).join('.')
}

function keyOf(node: NodeProto, weightName: string): string | null {
  return moduleKeyOf(pathOfNodeName(node.name)) ?? moduleKeyOf(weightName.replace(/\.weight(_transposed)?$/, ''))
}

/** [in, out] of a projection node, or null when the node is not x · W with W a 2-D initializer. */
const FLOAT_TYPES = new Set<number>([TensorProto_DataType.FLOAT, TensorProto_DataType.FLOAT16, TensorProto_DataType.BFLOAT16])

function projectionSize(node: NodeProto, initializers: ReadonlyMap<string, TensorProto>): [number, number] | null {
  if (node.opType !== 'MatMul' && node.opType !== 'Gemm') return null
  if (node.domain !== '' && node.domain !== 'ai.onnx') return null
  const weight = initializers.get(node.input[1] ?? '')
  // Float weights only: a quantized export's integer weights are not x·W as PEFT's LoRA sees it.
  if (!weight || weight.dims.length !== 2 || !FLOAT_TYPES.has(weight.dataType)) return null
  const [rows, cols] = weight.dims.map(Number)
  if (node.opType === 'MatMul') return [rows, cols]
  if (intAttribute(node, 'transA', 0) !== 0) return null
  return intAttribute(node, 'transB', 0) === 0 ? [rows, cols] : [cols, rows]
}

function visit(graph: GraphProto, initializers: Map<string, TensorProto>, found: Map<string, GraphProjection>): void {
  // Initializers of an outer graph are visible inside its subgraphs.
  const scope = new Map(initializers)
  for (const t of graph.initializer) scope.set(t.name, t)
  for (const node of graph.node) {
    for (const a of node.attribute) {
      if (a.g) visit(a.g, scope, found)
      for (const g of a.graphs) visit(g, scope, found)
    }
    const size = projectionSize(node, scope)
    if (!size) continue
    const key = keyOf(node, node.input[1])
    if (key === null) continue
    const existing = found.get(key)
    if (!existing) {
      found.set(key, { key, inFeatures: size[0], outFeatures: size[1], sites: [{ graph, node }], elemType: scope.get(node.input[1])!.dataType })
    } else if (existing.inFeatures === size[0] && existing.outFeatures === size[1]) {
      existing.sites.push({ graph, node })
    }
  }
}

/** Every LoRA-targetable projection of the model, sorted by layer then name. */
export function findLoraProjections(graph: GraphProto): GraphProjection[] {
  const found = new Map<string, GraphProjection>()
  visit(graph, new Map(), found)
  return [...found.values()].sort((a, b) => {
    const [la, lb] = [Number(a.key.split('.')[1]), Number(b.key.split('.')[1])]
    return la - lb || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
  })
}
