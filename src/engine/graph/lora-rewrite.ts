/**
 * Per-row LoRA in one forward pass (Punica / S-LoRA's batched low-rank
 * update, expressed in plain ONNX). Every LoRA-targetable projection
 * `y = x·W` (lora-projections.ts) gains two inputs,
 *   lora.<key>.A  float [batch, in, r]   each row's lora_Aᵀ
 *   lora.<key>.B  float [batch, r, out]  each row's scaling · lora_Bᵀ
 * and becomes `y = x·W + (x·A)·B`, batched over rows. A row without a LoRA on
 * that module has zeros; ranks are padded with zeros to the batch's largest;
 * a batch where no row has one feeds r = 0, so the update is an empty product
 * and the output is the original, bit for bit. The weights W are never
 * touched or copied: rows with different adapters share every MatMul.
 *
 * x may be [batch, seq, in] (Llama's MatMul) or flattened to
 * [batch·seq, in] (GPT-2's Gemm): it is viewed as [batch, -1, in] for the
 * batched MatMul and the update is reshaped back to y's shape.
 */
import { create } from '@bufbuild/protobuf'
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  TensorProtoSchema,
  TensorProto_DataType,
  type GraphProto,
  type ModelProto,
  type NodeProto,
} from 'onnx-buf'
import { leafOfKey } from '../../domain/lora-module-key.js'
import { addGraphInput, castNode, newNode } from './graph-edit.js'
import type { GraphRewrite } from './graph-rewrite.js'
import { peftDefaultLoraTargets } from './lora-default-targets.js'
import { findLoraProjections, type GraphProjection } from './lora-projections.js'

/** Input names of a module's per-row low-rank factors. */
export const loraInputA = (key: string): string => `lora.${key}.A`
export const loraInputB = (key: string): string => `lora.${key}.B`
export const LORA_INPUT = /^lora\.(.+)\.(A|B)$/

/** A one-dimensional int64 Constant node (shapes and slice bounds; a node, so it lives in the graph that uses it). */
function int64Constant(name: string, values: number[]): NodeProto {
  const data = BigInt64Array.from(values.map(BigInt))
  const value = create(TensorProtoSchema, { dims: [BigInt(values.length)], dataType: TensorProto_DataType.INT64, rawData: new Uint8Array(data.buffer) })
  const node = newNode('Constant', name, [], [name])
  node.attribute.push(create(AttributeProtoSchema, { name: 'value', type: AttributeProto_AttributeType.TENSOR, t: value }))
  return node
}

function op(name: string, opType: string, input: string[], output: string): NodeProto {
  return newNode(opType, name, input, [output])
}

/**
 * Per graph, once: `[batch, -1, in]` for each input width, batch read from the
 * first A input (every A has the row count first).
 */
class RowShapes {
  readonly prelude: NodeProto[] = []
  private readonly byWidth = new Map<number, string>()
  private batch: string | null = null

  constructor(private readonly prefix: string, private readonly firstA: string) {}

  rowsOf(width: number): string {
    const existing = this.byWidth.get(width)
    if (existing) return existing
    const p = this.prefix
    if (this.batch === null) {
      this.batch = `${p}/batch`
      this.prelude.push(
        int64Constant(`${p}/zero`, [0]),
        int64Constant(`${p}/one`, [1]),
        op(`${p}/a_shape`, 'Shape', [this.firstA], `${p}/a_shape`),
        op(this.batch, 'Slice', [`${p}/a_shape`, `${p}/zero`, `${p}/one`], this.batch),
      )
    }
    const name = `${p}/rows_${width}`
    this.prelude.push(
      int64Constant(`${name}/tail`, [-1, width]),
      concat(name, [this.batch, `${name}/tail`]),
    )
    this.byWidth.set(width, name)
    return name
  }
}

/** Concat along axis 0 (an INT attribute, which newNode does not write). */
function concat(name: string, inputs: string[]): NodeProto {
  const node = newNode('Concat', name, inputs, [name])
  node.attribute.push(create(AttributeProtoSchema, { name: 'axis', type: AttributeProto_AttributeType.INT, i: 0n }))
  return node
}

/** The nodes that add one row-batched low-rank update after `node`, whose output keeps its name. */
function updateNodes(projection: GraphProjection, node: NodeProto, site: number, rowShape: string): NodeProto[] {
  const p = `/prefixd/lora/${projection.key}/${site}`
  const [x] = node.input
  const y = node.output[0]
  const base = `${p}/base`
  node.output[0] = base
  // Factors arrive in float32; a half-precision projection multiplies them in its own type.
  const casts: NodeProto[] = []
  let [a, b] = [loraInputA(projection.key), loraInputB(projection.key)]
  if (projection.elemType !== TensorProto_DataType.FLOAT) {
    casts.push(castNode(`${p}/a_cast`, a, `${p}/a_cast`, projection.elemType), castNode(`${p}/b_cast`, b, `${p}/b_cast`, projection.elemType))
    ;[a, b] = [`${p}/a_cast`, `${p}/b_cast`]
  }
  return [
    ...casts,
    op(`${p}/x_rows`, 'Reshape', [x, rowShape], `${p}/x_rows`),
    op(`${p}/xa`, 'MatMul', [`${p}/x_rows`, a], `${p}/xa`),
    op(`${p}/xab`, 'MatMul', [`${p}/xa`, b], `${p}/xab`),
    op(`${p}/y_shape`, 'Shape', [base], `${p}/y_shape`),
    op(`${p}/delta`, 'Reshape', [`${p}/xab`, `${p}/y_shape`], `${p}/delta`),
    op(`${p}/add`, 'Add', [base, `${p}/delta`], y),
  ]
}

function batchDimOf(graph: GraphProto): number | string {
  const first = graph.input.find((i) => i.name === 'input_ids')?.type?.value
  const dim = first?.case === 'tensorType' ? first.value.shape?.dim[0]?.value : undefined
  return dim?.case === 'dimParam' ? dim.value : 'batch_size'
}

/** The rewrite for the projections whose leaf module name `targets` accepts. */
export function loraRewriteFor(targets: (leafName: string) => boolean): GraphRewrite {
  const targeted = (graph: GraphProto) => findLoraProjections(graph).filter((p) => targets(leafOfKey(p.key)))
  return {
    name: 'lora_per_row',
    needed(model: ModelProto): boolean {
      const graph = model.graph
      if (!graph || graph.input.some((i) => LORA_INPUT.test(i.name))) return false
      return targeted(graph).length > 0
    },
    apply(model: ModelProto): void {
      addLoraInputs(model.graph!, targeted(model.graph!))
    },
  }
}

/** Every projection the model has. */
export const loraRewrite = loraRewriteFor(() => true)

/**
 * MODEL_REWRITES as LORA_TARGET_MODULES asks: 'all' keeps the list, 'none'
 * drops the LoRA rewrite, 'peft' (the default) restricts it to PEFT's default
 * target modules for the model type (lora-default-targets.ts), names to those
 * leaf modules.
 */
export function withLoraTargets(rewrites: readonly GraphRewrite[], setting: string | undefined, modelType: string): GraphRewrite[] {
  const names = setting === undefined || setting === 'peft' ? peftDefaultLoraTargets(modelType) : setting === 'all' ? null : setting.split(',').map((s) => s.trim())
  if (names === null) return [...rewrites]
  const wanted = new Set(names)
  return rewrites.flatMap((r) => (r !== loraRewrite ? [r] : setting === 'none' ? [] : [loraRewriteFor((leaf) => wanted.has(leaf))]))
}

function addLoraInputs(graph: GraphProto, projections: readonly GraphProjection[]): void {
  const additions = new Map<NodeProto, NodeProto[]>()
  const shapes = new Map<GraphProto, RowShapes>()
  const batch = batchDimOf(graph)
  for (const projection of projections) {
    const rank = `lora_rank.${projection.key}`
    addGraphInput(graph, loraInputA(projection.key), TensorProto_DataType.FLOAT, [batch, projection.inFeatures, rank])
    addGraphInput(graph, loraInputB(projection.key), TensorProto_DataType.FLOAT, [batch, rank, projection.outFeatures])
    projection.sites.forEach((site, i) => {
      let rows = shapes.get(site.graph)
      if (!rows) shapes.set(site.graph, (rows = new RowShapes(`/prefixd/lora/graph${shapes.size}`, loraInputA(projections[0].key))))
      additions.set(site.node, updateNodes(projection, site.node, i, rows.rowsOf(projection.inFeatures)))
    })
  }
  // Shapes first, then each update right after its projection: every graph stays topologically sorted.
  for (const [g, rows] of shapes) g.node = [...rows.prelude, ...g.node.flatMap((n) => [n, ...(additions.get(n) ?? [])])]
}
