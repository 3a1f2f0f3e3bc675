/**
 * Makes the graph return only the key/value columns a pass computed
 * ("present_step.{i}.key/value", [batch, kv_heads, seq_len, head_dim]) instead
 * of the whole `present` (past + new). The engine keeps the cache itself and
 * appends those columns in place (batch/kv-state.ts).
 *
 * Why: onnxruntime-node 1.30 copies every output into a new, zero-filled V8
 * ArrayBuffer, pre-allocated outputs included. Returning `present` made it
 * move the whole key/value cache (14 MB per decode step at batch 16 for the
 * 15m Llama) through memset + memcpy and V8's external-memory GC on every
 * step: the larger part of the gap to Python onnxruntime on the same file
 * (docs/performance.md). The new columns are a few kilobytes.
 *
 * Applies when every present output is a Concat of its own past input and the
 * new columns along the sequence axis, as optimum's exports and the
 * project's generated models build it. Any other graph (fused attention with
 * a present output, a merged decoder's If) is left as it is; the engine then
 * cuts the new columns out of `present`.
 *
 * A session that can bind outputs (the C API, session/capi-session.ts) does
 * not need this: it keeps the graph's `present` and has it written into the
 * engine's own buffers (present-in-place.ts), which is faster still.
 */
import { clone, create } from '@bufbuild/protobuf'
import { NodeProtoSchema, TypeProtoSchema, ValueInfoProtoSchema, type GraphProto, type ModelProto, type NodeProto, type ValueInfoProto } from 'onnx-buf'
import { allGraphs } from './graph-index.js'
import type { GraphRewrite } from './graph-rewrite.js'

const PRESENT = /^present\.(\d+)\.(key|value)$/
/** Symbolic length of the new columns' axis: the pass's own sequence length. */
const STEP_DIM = 'step_sequence_length'

export function stepOutputName(layer: number, kind: 'key' | 'value'): string {
  return `present_step.${layer}.${kind}`
}

interface StepSource {
  output: ValueInfoProto
  /** The tensor holding the pass's new columns: the Concat's second input. */
  newColumns: string
  layer: number
  kind: 'key' | 'value'
}

function concatAxis(node: NodeProto): number | undefined {
  const axis = node.attribute.find((a) => a.name === 'axis')
  return axis === undefined ? undefined : Number(axis.i)
}

/** Each present output's new-column source, or null when one of them is not the plain Concat. */
function stepSources(model: ModelProto): StepSource[] | null {
  const graph = model.graph
  if (!graph) return null
  const producer = new Map<string, NodeProto>()
  for (const node of graph.node) for (const out of node.output) producer.set(out, node)
  const sources: StepSource[] = []
  for (const output of graph.output) {
    const m = PRESENT.exec(output.name)
    if (!m) continue
    const layer = Number(m[1])
    const kind = m[2] as 'key' | 'value'
    const node = producer.get(output.name)
    const axis = node ? concatAxis(node) : undefined
    // Rank-4 [batch, heads, seq, dim]: the sequence axis is 2 (or -2).
    if (!node || node.opType !== 'Concat' || node.input.length !== 2 || (axis !== 2 && axis !== -2)) return null
    if (node.input[0] !== `past_key_values.${layer}.${kind}`) return null
    sources.push({ output, newColumns: node.input[1], layer, kind })
  }
  return sources.length > 0 ? sources : null
}

function stepValueInfo(source: StepSource): ValueInfoProto {
  const info = create(ValueInfoProtoSchema, { name: stepOutputName(source.layer, source.kind) })
  const type = source.output.type
  if (type) {
    info.type = clone(TypeProtoSchema, type)
    if (info.type.value.case === 'tensorType') {
      const dims = info.type.value.value.shape?.dim
      if (dims && dims.length === 4) dims[2].value = { case: 'dimParam', value: STEP_DIM }
    }
  }
  return info
}

/**
 * Whether the new columns can take the output's name themselves: a tensor a
 * node of the main graph makes, that is no graph input, initializer or
 * output already, and that no nested graph reads from the outer scope.
 */
function renameable(graph: GraphProto, tensor: string): boolean {
  if (!graph.node.some((n) => n.output.includes(tensor))) return false
  if (graph.input.some((i) => i.name === tensor) || graph.initializer.some((i) => i.name === tensor) || graph.output.some((o) => o.name === tensor)) return false
  const nested = allGraphs(graph).filter((g) => g !== graph)
  return !nested.some((g) => g.node.some((n) => n.input.includes(tensor)))
}

/** Renames a tensor of the main graph wherever it is made, read or described. */
function renameTensor(graph: GraphProto, from: string, to: string): void {
  const rename = (name: string) => (name === from ? to : name)
  for (const node of graph.node) {
    node.input = node.input.map(rename)
    node.output = node.output.map(rename)
  }
  for (const info of graph.valueInfo) info.name = rename(info.name)
}

export const kvStepOutputs: GraphRewrite = {
  name: 'kv_step_outputs',
  needed: (model) => stepSources(model) !== null,
  apply(model) {
    const sources = stepSources(model)!
    const graph = model.graph!
    // The Concat stays (attention reads it); only what leaves the graph changes.
    const replaced = new Set(sources.map((s) => s.output.name))
    // Tensors already renamed to an output (two outputs of one tensor: the second copies the first).
    const renamedTo = new Map<string, string>()
    for (const s of sources) {
      const name = stepOutputName(s.layer, s.kind)
      const source = renamedTo.get(s.newColumns)
      if (source === undefined && renameable(graph, s.newColumns)) {
        // The new columns take the output's name: no Identity, which ONNX Runtime would run (a copy) on every pass.
        renameTensor(graph, s.newColumns, name)
        renamedTo.set(s.newColumns, name)
      } else {
        graph.node.push(create(NodeProtoSchema, { opType: 'Identity', name: `/prefixd/${name}`, input: [source ?? s.newColumns], output: [name] }))
      }
    }
    graph.output = [...graph.output.filter((o) => !replaced.has(o.name)), ...sources.map(stepValueInfo)]
  },
}
