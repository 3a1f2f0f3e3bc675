/**
 * The ways an exported decoder's files differ from the plain float32
 * model.onnx, so that the generator can write each of them for tests without
 * Python: float16 weights and key/values (GPU exports), weights in an external
 * data file (every model above 2 GB), and optimum 1.x's merged decoder, where
 * one file holds the first pass and the cached passes as the two branches of
 * an If on `use_cache_branch`.
 */
import { clone, create } from '@bufbuild/protobuf'
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  GraphProtoSchema,
  NodeProtoSchema,
  TensorProto_DataType,
  ValueInfoProtoSchema,
  type ValueInfoProto,
} from 'onnx-buf'
import { floatToHalfBits } from '../../prefixes/dtype-convert.js'
import { MASKED_SCORE, MASKED_SCORE_FLOAT16, type DecoderGraphOptions } from './onnx-decoder-parts.js'
import { GraphBuilder, type LazyInitializer } from './onnx-graph-builder.js'
import type { ModelWeights } from './weights.js'

export interface ModelLayout {
  /** Weights, key/values and logits in float32 (default) or float16. */
  dtype?: 'float32' | 'float16'
  /** Weights in `model.onnx_data` (or `decoder_model_merged.onnx_data`) beside the graph. */
  externalData?: boolean
  /** optimum 1.x's decoder_model_merged.onnx with its use_cache_branch If. */
  merged?: boolean
}

export type DecoderBuilder = (weights: ModelWeights, opts: DecoderGraphOptions) => GraphBuilder

export function modelFileName(layout: ModelLayout): string {
  return layout.merged ? 'decoder_model_merged.onnx' : 'model.onnx'
}

function halfInitializer(init: LazyInitializer): LazyInitializer {
  if (init.dataType !== TensorProto_DataType.FLOAT) return init
  const bytes = (): Uint8Array => {
    const raw = init.bytes()
    const floats = new Float32Array(raw.slice().buffer)
    return new Uint8Array(Uint16Array.from(floats, floatToHalfBits).buffer)
  }
  return { ...init, dataType: TensorProto_DataType.FLOAT16, byteLength: init.byteLength / 2, bytes }
}

function retype(values: ValueInfoProto[]): void {
  for (const v of values) {
    const t = v.type?.value.case === 'tensorType' ? v.type.value.value : undefined
    if (t?.elemType === TensorProto_DataType.FLOAT) t.elemType = TensorProto_DataType.FLOAT16
  }
}

/** Turns a float32 graph into a float16 one: weights, constants, casts, inputs and outputs. */
function toFloat16(g: GraphBuilder): GraphBuilder {
  g.initializers.splice(0, g.initializers.length, ...g.initializers.map(halfInitializer))
  retype(g.inputs)
  retype(g.outputs)
  for (const node of g.nodes) {
    for (const a of node.attribute) {
      if (node.opType === 'Cast' && a.name === 'to' && a.i === BigInt(TensorProto_DataType.FLOAT)) a.i = BigInt(TensorProto_DataType.FLOAT16)
    }
  }
  return g
}

/** One If branch: the builder's nodes, its outputs renamed apart from the If's own outputs. */
function branch(b: GraphBuilder, name: string) {
  const outputs = b.outputs.map((o) => {
    const renamed = `${name}/${o.name}`
    for (const node of b.nodes) {
      node.output.forEach((n, i) => n === o.name && (node.output[i] = renamed))
      node.input.forEach((n, i) => n === o.name && (node.input[i] = renamed))
    }
    const value = clone(ValueInfoProtoSchema, o)
    value.name = renamed
    return value
  })
  return create(GraphProtoSchema, { name, node: b.nodes, output: outputs })
}

function graphAttribute(name: string, g: ReturnType<typeof branch>) {
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.GRAPH, g })
}

/**
 * The merged decoder: the inputs of the cached decoder plus a boolean
 * `use_cache_branch`; true runs the graph that reads the past, false the one
 * that has none. Weights are shared by name in the outer graph.
 */
function mergedDecoder(weights: ModelWeights, build: DecoderBuilder, convert: (g: GraphBuilder) => GraphBuilder, maskedScore: number): GraphBuilder {
  const withPast = convert(build(weights, { prefix: 'with_past/', withPast: true, maskedScore }))
  const noPast = convert(build(weights, { prefix: 'no_past/', withPast: false, maskedScore }))
  const main = new GraphBuilder()
  main.inputs.push(...withPast.inputs)
  main.input('use_cache_branch', TensorProto_DataType.BOOL, [1])
  main.outputs.push(...withPast.outputs.map((o) => clone(ValueInfoProtoSchema, o)))
  const seen = new Set<string>()
  for (const init of [...withPast.initializers, ...noPast.initializers]) {
    if (seen.has(init.name)) continue
    seen.add(init.name)
    main.initializers.push(init)
  }
  const outputs = main.outputs.map((o) => o.name)
  main.nodes.push(
    create(NodeProtoSchema, {
      name: 'optimum_merged_if',
      opType: 'If',
      input: ['use_cache_branch'],
      output: outputs,
      attribute: [graphAttribute('then_branch', branch(withPast, 'with_past')), graphAttribute('else_branch', branch(noPast, 'no_past'))],
    }),
  )
  return main
}

/** The graph to write for a layout. */
export function buildLayoutGraph(weights: ModelWeights, build: DecoderBuilder, layout: ModelLayout): GraphBuilder {
  const half = layout.dtype === 'float16'
  const convert = half ? toFloat16 : (g: GraphBuilder) => g
  const maskedScore = half ? MASKED_SCORE_FLOAT16 : MASKED_SCORE
  if (layout.merged) return mergedDecoder(weights, build, convert, maskedScore)
  return convert(build(weights, { maskedScore }))
}
