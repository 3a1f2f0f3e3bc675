/**
 * Lookups over one ONNX graph that the rewrites share: which node produces a
 * tensor, which nodes consume it, which names are constants, and the graphs
 * nested in control-flow nodes (If/Loop/Scan branches of merged decoders).
 */
import { TensorProto_DataType, type GraphProto, type NodeProto } from 'onnx-buf'

export class GraphIndex {
  readonly producer = new Map<string, NodeProto>()
  readonly consumers = new Map<string, NodeProto[]>()
  readonly initializers = new Map<string, TensorProto_DataType>()

  constructor(readonly graph: GraphProto) {
    for (const init of graph.initializer) this.initializers.set(init.name, init.dataType)
    for (const node of graph.node) {
      for (const out of node.output) this.producer.set(out, node)
      for (const inp of node.input) {
        if (inp === '') continue
        const list = this.consumers.get(inp)
        if (list) list.push(node)
        else this.consumers.set(inp, [node])
      }
    }
  }

  /** A value fixed at export time: an initializer or a Constant node's output. */
  isConstant(name: string): boolean {
    return this.initializers.has(name) || this.producer.get(name)?.opType === 'Constant'
  }

  /** The int64 values of a constant tensor (axes, shapes), or undefined when not a readable constant. */
  constantInts(name: string): bigint[] | undefined {
    const init = this.graph.initializer.find((t) => t.name === name)
    const tensor = init ?? this.producer.get(name)?.attribute.find((a) => a.name === 'value')?.t
    if (!tensor || tensor.dataType !== TensorProto_DataType.INT64) return undefined
    if (tensor.int64Data.length > 0) return [...tensor.int64Data]
    const raw = tensor.rawData
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
    return Array.from({ length: raw.byteLength / 8 }, (_, i) => view.getBigInt64(i * 8, true))
  }

  /**
   * Nodes whose outputs flow into the given nodes (the nodes included). A
   * Shape node is included but not followed: it reads only its input's dims,
   * so what produced the values is no ancestor of the result's data.
   */
  dataAncestors(sinks: readonly NodeProto[]): Set<NodeProto> {
    const seen = new Set<NodeProto>()
    const stack = [...sinks]
    while (stack.length > 0) {
      const node = stack.pop()!
      if (seen.has(node)) continue
      seen.add(node)
      if (node.opType === 'Shape' || node.opType === 'Size') continue
      for (const inp of node.input) {
        const p = this.producer.get(inp)
        if (p && !seen.has(p)) stack.push(p)
      }
    }
    return seen
  }
}

/** The graph and every graph nested in its nodes' attributes, depth first. */
export function allGraphs(graph: GraphProto): GraphProto[] {
  const out = [graph]
  for (const node of graph.node) {
    for (const attr of node.attribute) {
      if (attr.g) out.push(...allGraphs(attr.g))
      for (const g of attr.graphs) out.push(...allGraphs(g))
    }
  }
  return out
}
