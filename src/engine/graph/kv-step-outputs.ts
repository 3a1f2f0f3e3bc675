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
 */
import { clone, create } from '@bufbuild/protobuf'
import { NodeProtoSchema, TypeProtoSchema, ValueInfoProtoSchema, type ModelProto, type NodeProto, type ValueInfoProto } from 'onnx-buf'
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

export const kvStepOutputs: GraphRewrite = {
  name: 'kv_step_outputs',
  needed: (model) => stepSources(model) !== null,
  apply(model) {
    const sources = stepSources(model)!
    const graph = model.graph!
    // The Concat stays (attention reads it); only what leaves the graph changes.
    // An Identity gives the new columns their output name; it copies a few kilobytes.
    const replaced = new Set(sources.map((s) => s.output.name))
    for (const s of sources) {
      graph.node.push(
        create(NodeProtoSchema, {
          opType: 'Identity',
          name: `/prefixd/${stepOutputName(s.layer, s.kind)}`,
          input: [s.newColumns],
          output: [stepOutputName(s.layer, s.kind)],
        }),
      )
    }
    graph.output = [...graph.output.filter((o) => !replaced.has(o.name)), ...sources.map(stepValueInfo)]
  },
}
