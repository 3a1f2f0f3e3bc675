/**
 * Logits for the last positions only: a `logits_to_keep` input ([1], int64,
 * transformers' name for the same thing) says how many of the pass's last
 * positions get logits, and the graph slices the hidden states to those
 * positions right before the LM head.
 *
 * Why: a prefill of 16 rows × 16 positions computed the LM head (a
 * hidden × vocabulary MatMul, the largest of a small model) for all 256
 * positions and returned 256 × vocabulary floats (32 MB for a 32k vocabulary)
 * through onnxruntime-node's copy, when only each row's last position picks
 * the next token. Prompt logprobs (echo) still ask for every position.
 *
 * Found by structure: walking back from the `logits` output through ops that
 * keep the shape and have one computed input (Cast, a bias Add, a
 * soft-capping Div/Tanh/Mul), to a MatMul of a computed activation and a
 * float32 weight fixed at export (an initializer, possibly transposed), or to
 * a Gemm over rows flattened by a Reshape (then unflattened to the kept
 * positions). The hidden states are sliced along the sequence axis (-2, since
 * the MatMul multiplies the last). Any other graph (a merged decoder's If, a
 * float16 or quantized head) is left as it is and the engine reads every
 * position's logits, as before.
 */
import { TensorProto_DataType, type GraphProto, type ModelProto, type NodeProto } from 'onnx-buf'
import { addGraphInput, addInt64Constant, defaultOpset, insertBefore, newNode, withInts } from './graph-edit.js'
import type { GraphRewrite } from './graph-rewrite.js'
import { GraphIndex } from './graph-index.js'

export const LOGITS_TO_KEEP = 'logits_to_keep'
const LOGITS = 'logits'

/** Elementwise ops between the LM head and the output that keep the shape (bias, cast, soft-capping). */
const SHAPE_KEEPING = new Set(['Cast', 'Add', 'Sub', 'Mul', 'Div', 'Tanh', 'Identity'])
/** LM head products whose first input is the activation and second the weight. */
const HEAD_PRODUCTS = new Set(['MatMul', 'FusedMatMul'])

/** Whether a tensor is fixed at export: an initializer, a Constant, or computed from those alone (a Transpose of a tied embedding). */
function fixedAtExport(index: GraphIndex, name: string, seen = new Set<string>()): boolean {
  if (index.isConstant(name)) return true
  const node = index.producer.get(name)
  if (!node || seen.has(name)) return false
  seen.add(name)
  return node.input.filter((i) => i !== '').every((i) => fixedAtExport(index, i, seen))
}

/**
 * Where the hidden states enter the LM head: `at` reads them [batch, seq,
 * hidden] as its first input (the MatMul, or the Reshape that flattens them
 * for a Gemm); `unflatten`, in the Gemm case, is the Reshape back to
 * [batch, seq, vocab], whose target shape must then follow the kept positions.
 */
interface HeadEntry {
  at: NodeProto
  unflatten?: NodeProto
}

/**
 * The element type of a weight fixed at export: its initializer's, through
 * single-input ops (a Transpose of a tied embedding); undefined otherwise.
 */
function weightType(index: GraphIndex, name: string): TensorProto_DataType | undefined {
  for (let depth = 0; depth < 4; depth++) {
    const type = index.initializers.get(name)
    if (type !== undefined) return type
    const inputs = index.producer.get(name)?.input.filter((i) => i !== '')
    if (!inputs || inputs.length !== 1) return undefined
    name = inputs[0]
  }
  return undefined
}

/**
 * Only a float32 head: in a half-precision graph, ONNX Runtime's CPU kernels
 * run some ops in float32 between inserted casts, and a Slice between the
 * final norm and the head adds a rounding to float16 there, which changed
 * logprobs by more than the batching tolerance (1e-4) in the tests. Quantized
 * heads (integer weights) are not batch invariant to begin with.
 */
function floatWeight(index: GraphIndex, name: string): boolean {
  return weightType(index, name) === TensorProto_DataType.FLOAT
}

/** Reshape(Gemm(Reshape(h, [-1, hidden]), W), shape): a Linear over flattened rows, as some exporters write it. */
function flattenedHead(index: GraphIndex, reshape: NodeProto): HeadEntry | null {
  const gemm = index.producer.get(reshape.input[0])
  if (gemm?.opType !== 'Gemm' || !floatWeight(index, gemm.input[1])) return null
  const bias = gemm.input[2]
  if (bias !== undefined && bias !== '' && !fixedAtExport(index, bias)) return null
  const flatten = index.producer.get(gemm.input[0])
  if (flatten?.opType !== 'Reshape' || index.constantInts(flatten.input[1])?.length !== 2) return null
  return fixedAtExport(index, flatten.input[0]) ? null : { at: flatten, unflatten: reshape }
}

/** The LM head's entry, or null when the graph has none this rewrite can find. */
function lmHead(graph: GraphProto): HeadEntry | null {
  if (!graph.output.some((o) => o.name === LOGITS)) return null
  const index = new GraphIndex(graph)
  let tensor = LOGITS
  for (let depth = 0; depth < 8; depth++) {
    const node = index.producer.get(tensor)
    if (!node) return null
    if (HEAD_PRODUCTS.has(node.opType)) {
      const [activation, weight] = node.input
      return !fixedAtExport(index, activation) && floatWeight(index, weight) ? { at: node } : null
    }
    if (node.opType === 'Reshape') return flattenedHead(index, node)
    if (!SHAPE_KEEPING.has(node.opType)) return null
    const computed = node.input.filter((i) => i !== '' && !fixedAtExport(index, i))
    if (computed.length !== 1) return null
    tensor = computed[0]
  }
  return null
}

/** The Reshape back from flattened rows now targets [batch, k, vocabulary]: the kept hidden states' first two dims, then the rest. */
function unflattenAsKept(graph: GraphProto, reshape: NodeProto, kept: string): void {
  const P = '/prefixd/logits_to_keep/unflatten'
  const zero = addInt64Constant(graph, `${P}/zero`, [0], [1])
  const two = addInt64Constant(graph, `${P}/two`, [2], [1])
  const rest = addInt64Constant(graph, `${P}/rest`, [-1], [1])
  insertBefore(graph, reshape, [
    newNode('Shape', `${P}/Shape`, [kept], [`${P}/shape`]),
    newNode('Slice', `${P}/Slice`, [`${P}/shape`, zero, two], [`${P}/batch_and_kept`]),
    withInts(newNode('Concat', `${P}/Concat`, [`${P}/batch_and_kept`, rest], [`${P}/target`]), { axis: 0 }),
  ])
  reshape.input[1] = `${P}/target`
}

export const logitsToKeep: GraphRewrite = {
  name: 'logits_to_keep',
  needed(model: ModelProto) {
    // Slice takes its bounds as inputs from opset 10 on.
    const graph = model.graph
    return graph !== undefined && defaultOpset(model) >= 10 && !graph.input.some((i) => i.name === LOGITS_TO_KEEP) && lmHead(graph) !== null
  },
  apply(model: ModelProto) {
    const graph = model.graph!
    const head = lmHead(graph)
    if (!head) throw new Error('model.onnx: found no LM head to keep the last positions of')
    const activation = head.at.input[0]
    const starts = '/prefixd/logits_to_keep/starts'
    const kept = '/prefixd/logits_to_keep/hidden'
    const ends = addInt64Constant(graph, '/prefixd/logits_to_keep/ends', [Number.MAX_SAFE_INTEGER], [1])
    const axes = addInt64Constant(graph, '/prefixd/logits_to_keep/axes', [-2], [1])
    insertBefore(graph, head.at, [
      // The last k positions: from -k to the end of the sequence axis.
      newNode('Neg', '/prefixd/logits_to_keep/neg', [LOGITS_TO_KEEP], [starts]),
      newNode('Slice', '/prefixd/logits_to_keep/slice', [activation, starts, ends, axes], [kept]),
    ])
    head.at.input[0] = kept
    if (head.unflatten) unflattenAsKept(graph, head.unflatten, kept)
    addGraphInput(graph, LOGITS_TO_KEEP, TensorProto_DataType.INT64, [1])
    // The logits' sequence axis is now k long, not the pass's sequence length.
    const out = graph.output.find((o) => o.name === LOGITS)
    const dims = out?.type?.value.case === 'tensorType' ? out.type.value.value.shape?.dim : undefined
    if (dims && dims.length === 3) dims[1].value = { case: 'dimParam', value: 'logits_positions' }
  },
}
