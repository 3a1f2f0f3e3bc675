/**
 * Float32 at the boundary of half-precision models (float16 or bfloat16 past
 * key/values and logits, as GPU deployments export them). The engine keeps
 * its key/value cache and reads logits in float32; this rewrite makes such a
 * graph take and give float32 there, with a Cast right behind each input and
 * in front of each output, and computes inside in its own precision.
 *
 * Exact: a past that came out of the model is float16 widened to float32,
 * which the Cast narrows back to the very same bits; a prefix is rounded to
 * float16 once, as PEFT's own cast to the model's dtype does; widening
 * logits loses nothing. The cost is twice the bytes for the cache held in
 * JavaScript, paid for running every family through one engine path.
 */
import {
  TensorProto_DataType,
  type GraphProto,
  type ModelProto,
  type ValueInfoProto,
} from 'onnx-buf'
import { castNode } from './graph-edit.js'
import type { GraphRewrite } from './graph-rewrite.js'
import { allGraphs } from './graph-index.js'

const HALF_TYPES = new Set<number>([TensorProto_DataType.FLOAT16, TensorProto_DataType.BFLOAT16])
/** The tensors the engine exchanges with the model as floats. */
const ENGINE_FLOATS = /^(past_key_values\.\d+\.(key|value)|present(_step)?\.\d+\.(key|value)|logits|inputs_embeds)$/

function tensorType(v: ValueInfoProto) {
  return v.type?.value.case === 'tensorType' ? v.type.value.value : undefined
}

function halfBoundary(values: readonly ValueInfoProto[]): ValueInfoProto[] {
  return values.filter((v) => ENGINE_FLOATS.test(v.name) && HALF_TYPES.has(tensorType(v)?.elemType ?? -1))
}

/** Every use of `from` as a node input, in the graph and the graphs nested in it, now reads `to`. */
function renameUses(root: GraphProto, from: string, to: string): void {
  for (const g of allGraphs(root)) {
    for (const node of g.node) node.input.forEach((name, i) => name === from && (node.input[i] = to))
    if (g !== root) for (const out of g.output) if (out.name === from) out.name = to
  }
}

export const float32Io: GraphRewrite = {
  name: 'float32_io',
  needed(model: ModelProto) {
    const g = model.graph
    return g !== undefined && (halfBoundary(g.input).length > 0 || halfBoundary(g.output).length > 0)
  },
  apply(model: ModelProto) {
    const graph = model.graph
    if (!graph) throw new Error('model.onnx has no graph')
    const head = []
    for (const input of halfBoundary(graph.input)) {
      const type = tensorType(input)!
      const inner = `/prefixd/${input.name}_as_model_dtype`
      renameUses(graph, input.name, inner)
      head.push(castNode(`/prefixd/cast/${input.name}`, input.name, inner, type.elemType))
      type.elemType = TensorProto_DataType.FLOAT
    }
    const tail = []
    for (const output of halfBoundary(graph.output)) {
      const type = tensorType(output)!
      const inner = `/prefixd/${output.name}_in_model_dtype`
      for (const node of graph.node) node.output.forEach((name, i) => name === output.name && (node.output[i] = inner))
      renameUses(graph, output.name, inner)
      tail.push(castNode(`/prefixd/cast/${output.name}`, inner, output.name, TensorProto_DataType.FLOAT))
      type.elemType = TensorProto_DataType.FLOAT
    }
    // Node order is topological: casts of inputs first, casts of outputs last.
    graph.node.unshift(...head)
    graph.node.push(...tail)
  },
}
