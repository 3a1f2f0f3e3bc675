/**
 * Positions as an input, for exports that derive them inside the graph
 * (gemma and other families whose optimum export has no `position_ids`).
 *
 * Such a graph computes `position_ids = arange(past_len, past_len + seq_len)
 * .unsqueeze(0)`: one position per column, shared by every row. That is right
 * for one request, but in a batch a row whose prefix is shorter than the
 * longest, or whose prompt is left-padded, gets the wrong positions. This
 * rewrite adds a `position_ids` input [batch, sequence] and feeds it to the
 * nodes that turn positions into rotary angles (Cos/Sin) or look up a learned
 * position table. Found by structure: an Unsqueeze(axis 0) of a Range whose
 * bounds depend on the inputs' shapes, and those of its consumers whose data
 * reaches a Cos, a Sin or a position-table Gather. Other consumers keep the
 * derived value: exports share that tensor with the causal mask, which must
 * stay by cache slot (the engine's past is right-aligned per row).
 *
 * Exact: fed arange(past_len, past_len + seq_len) in every row, the rewritten
 * graph computes what the original did. ALiBi graphs (BLOOM) derive their
 * bias from the attention mask's cumulative sum, which is per row already, so
 * they have no such subgraph and are left as they are.
 */
import {
  TensorProto_DataType,
  type GraphProto,
  type ModelProto,
  type NodeProto,
} from 'onnx-buf'
import { addGraphInput, castNode } from './graph-edit.js'
import type { GraphRewrite } from './graph-rewrite.js'
import { allGraphs, GraphIndex } from './graph-index.js'

export const POSITION_IDS = 'position_ids'

/** Where positions become numbers the model computes with. */
function isPositionSink(node: NodeProto, index: GraphIndex): boolean {
  if (node.opType === 'Cos' || node.opType === 'Sin') return true
  // A learned position table: Gather(float weights, positions).
  if (node.opType !== 'Gather') return false
  const type = index.initializers.get(node.input[0])
  return type === TensorProto_DataType.FLOAT || type === TensorProto_DataType.FLOAT16 || type === TensorProto_DataType.BFLOAT16
}

function unsqueezeAxes(node: NodeProto, index: GraphIndex): bigint[] | undefined {
  const attr = node.attribute.find((a) => a.name === 'axes')
  if (attr) return [...attr.ints]
  return node.input[1] ? index.constantInts(node.input[1]) : undefined
}

/** The element type a Range produces, read from what feeds its start (a Cast or a constant). */
function rangeType(range: NodeProto, index: GraphIndex): TensorProto_DataType {
  const start = range.input[0]
  const cast = index.producer.get(start)
  const to = cast?.opType === 'Cast' ? cast.attribute.find((a) => a.name === 'to')?.i : undefined
  if (to !== undefined) return Number(to)
  return index.initializers.get(start) ?? TensorProto_DataType.INT64
}

interface Rewire {
  node: NodeProto
  inputSlot: number
  type: TensorProto_DataType
}

/** The consumers of derived positions in one graph that must read the new input instead. */
function findRewires(graph: GraphProto): Rewire[] {
  const index = new GraphIndex(graph)
  const sinks = graph.node.filter((n) => isPositionSink(n, index))
  if (sinks.length === 0) return []
  const feedsSinks = index.dataAncestors(sinks)
  const rewires: Rewire[] = []
  for (const node of graph.node) {
    if (node.opType !== 'Unsqueeze') continue
    const range = index.producer.get(node.input[0])
    if (range?.opType !== 'Range') continue
    // Positions depend on the past's length; a Range of constants (inverse frequencies) does not.
    if (range.input.every((i) => index.isConstant(i))) continue
    const axes = unsqueezeAxes(node, index)
    if (!axes || axes.length !== 1 || axes[0] !== 0n) continue
    const positions = node.output[0]
    for (const consumer of index.consumers.get(positions) ?? []) {
      if (!feedsSinks.has(consumer)) continue
      consumer.input.forEach((name, slot) => {
        if (name === positions) rewires.push({ node: consumer, inputSlot: slot, type: rangeType(range, index) })
      })
    }
  }
  return rewires
}

/** position_ids as the Range's own type, cast once per graph where it is not int64. */
function positionsAs(graph: GraphProto, type: TensorProto_DataType, casts: Map<GraphProto, Map<number, string>>): string {
  if (type === TensorProto_DataType.INT64) return POSITION_IDS
  const perGraph = casts.get(graph) ?? new Map<number, string>()
  casts.set(graph, perGraph)
  const existing = perGraph.get(type)
  if (existing) return existing
  const name = `/prefixd/${POSITION_IDS}_as_${type}`
  graph.node.unshift(castNode(name, POSITION_IDS, name, type))
  perGraph.set(type, name)
  return name
}

function hasInput(model: ModelProto, name: string): boolean {
  return model.graph?.input.some((i) => i.name === name) ?? false
}

export const positionIdsInput: GraphRewrite = {
  name: 'position_ids',
  needed(model) {
    if (!model.graph || hasInput(model, POSITION_IDS)) return false
    return allGraphs(model.graph).some((g) => findRewires(g).length > 0)
  },
  apply(model) {
    const graph = model.graph
    if (!graph) throw new Error('model.onnx has no graph')
    const casts = new Map<GraphProto, Map<number, string>>()
    let rewired = 0
    for (const g of allGraphs(graph)) {
      for (const r of findRewires(g)) {
        r.node.input[r.inputSlot] = positionsAs(g, r.type, casts)
        rewired++
      }
    }
    if (rewired === 0) throw new Error('model.onnx: found no derived positions to replace with a position_ids input')
    // Nested graphs see the outer graph's inputs by name, so one input serves every branch.
    addGraphInput(graph, POSITION_IDS, TensorProto_DataType.INT64, ['batch_size', 'sequence_length'])
  },
}
