/**
 * Small structural edits on an ONNX graph for the load-time rewrites: find a
 * tensor's producer and consumers, add int64 constants, graph inputs and
 * nodes, re-point a tensor's consumers. Names the rewrites add start with
 * `/prefixd/` so they can never collide with an exporter's.
 */
import { create } from '@bufbuild/protobuf'
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  NodeProtoSchema,
  TensorProto_DataType,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from 'onnx-buf'

/** The opset version of the default ONNX domain the model imports. */
export function defaultOpset(model: ModelProto): number {
  const entry = model.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')
  return entry === undefined ? 0 : Number(entry.version)
}

export function initializerNamed(graph: GraphProto, name: string): TensorProto | undefined {
  return graph.initializer.find((t) => t.name === name)
}

export function consumersOf(graph: GraphProto, tensor: string): NodeProto[] {
  return graph.node.filter((n) => n.input.includes(tensor))
}

export function producerOf(graph: GraphProto, tensor: string): NodeProto | undefined {
  return graph.node.find((n) => n.output.includes(tensor))
}

/** An integer attribute's value, or `fallback` when the node does not set it. */
export function intAttribute(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name)
  return a === undefined ? fallback : Number(a.i)
}

export function addInt64Constant(graph: GraphProto, name: string, values: number[], dims: number[]): string {
  graph.initializer.push(create(TensorProtoSchema, { name, dataType: TensorProto_DataType.INT64, dims: dims.map(BigInt), int64Data: values.map(BigInt) }))
  return name
}

/** A tensor's declaration of `elemType`; string dims are symbolic, null leaves the shape (even the rank) unstated. */
function tensorInfo(name: string, elemType: TensorProto_DataType, dims: (number | string)[] | null): ValueInfoProto {
  const dim = (dims ?? []).map((d) =>
    create(TensorShapeProto_DimensionSchema, { value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d } }),
  )
  const shape = dims === null ? undefined : create(TensorShapeProtoSchema, { dim })
  const tensorType = create(TypeProto_TensorSchema, { elemType, shape })
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensorType } }) })
}

/** A graph input of `elemType`; string dims are symbolic. */
export function addGraphInput(graph: GraphProto, name: string, elemType: TensorProto_DataType, dims: (number | string)[]): void {
  graph.input.push(tensorInfo(name, elemType, dims))
}

/** A graph output of `elemType`; string dims are symbolic. */
export function addGraphOutput(graph: GraphProto, name: string, elemType: TensorProto_DataType, dims: (number | string)[]): void {
  graph.output.push(tensorInfo(name, elemType, dims))
}

export function newNode(opType: string, name: string, inputs: string[], outputs: string[], ints: Record<string, number[]> = {}): NodeProto {
  const attribute = Object.entries(ints).map(([key, values]) =>
    create(AttributeProtoSchema, { name: key, type: AttributeProto_AttributeType.INTS, ints: values.map(BigInt) }),
  )
  return create(NodeProtoSchema, { opType, name, input: inputs, output: outputs, attribute })
}

/** Adds single-INT attributes (axis, keepdims) to a node, which newNode's INTS lists cannot express. */
export function withInts(node: NodeProto, ints: Record<string, number>): NodeProto {
  for (const [name, value] of Object.entries(ints)) {
    node.attribute.push(create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(value) }))
  }
  return node
}

/**
 * A node with GRAPH attributes (an If's branches): each a subgraph of `nodes`
 * whose one output is `output`, of `elemType`. Subgraphs read the outer
 * graph's tensors by name, so they declare no inputs; their own names must
 * not repeat the outer graph's (nor each other's).
 */
export function withBranches(node: NodeProto, elemType: TensorProto_DataType, branches: Record<string, { nodes: NodeProto[]; output: string }>): NodeProto {
  for (const [name, { nodes, output }] of Object.entries(branches)) {
    const g = create(GraphProtoSchema, { name: `${node.name}/${name}`, node: nodes, output: [tensorInfo(output, elemType, null)] })
    node.attribute.push(create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.GRAPH, g }))
  }
  return node
}

/** Inserts nodes just before `anchor` in the node list (which ONNX keeps in topological order). */
export function insertBefore(graph: GraphProto, anchor: NodeProto, nodes: NodeProto[]): void {
  graph.node.splice(graph.node.indexOf(anchor), 0, ...nodes)
}

export function insertAfter(graph: GraphProto, anchor: NodeProto, nodes: NodeProto[]): void {
  graph.node.splice(graph.node.indexOf(anchor) + 1, 0, ...nodes)
}

/** Makes every node reading `from` (other than `except`) read `to` instead. */
export function redirectConsumers(graph: GraphProto, from: string, to: string, except: NodeProto): void {
  for (const node of graph.node) {
    if (node === except) continue
    node.input = node.input.map((name) => (name === from ? to : name))
  }
}

/** A Cast node to the given element type (its `to` attribute is a single INT, which newNode does not make). */
export function castNode(name: string, input: string, output: string, to: TensorProto_DataType): NodeProto {
  const attribute = [create(AttributeProtoSchema, { name: 'to', type: AttributeProto_AttributeType.INT, i: BigInt(to) })]
  return create(NodeProtoSchema, { opType: 'Cast', name, input: [input], output: [output], attribute })
}
