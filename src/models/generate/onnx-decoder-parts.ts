import { TensorProto_DataType } from 'onnx-buf'
import type { GraphBuilder } from './onnx-graph-builder.js'
import type { ModelDims } from './model-dims.js'

/**
 * The parts every decoder graph shares: the optimum input/output interface,
 * the attention bias, attention over past + current keys, and the tied head.
 */

/**
 * Added to the scores of keys a query must not see. Finite on purpose: a
 * pure padding row, whose keys are all masked, then softmaxes to a harmless
 * finite average instead of the NaN that -inf (or a sum of two finfo.min)
 * would give.
 */
export const MASKED_SCORE = -1e9
/**
 * The same in a float16 graph, where -1e9 would be -Infinity: small enough
 * that exp() gives 0, and twice it (causal plus padding) still finite.
 */
export const MASKED_SCORE_FLOAT16 = -30000

/** How one decoder graph is built: the merged decoder's branches differ in these. */
export interface DecoderGraphOptions {
  /** Starts every generated name (two branches share one model). */
  prefix?: string
  /** Whether the graph reads past key/values (false: the first pass of a merged decoder). */
  withPast?: boolean
  maskedScore?: number
}

export interface DecoderInputs {
  inputIds: string
  attentionMask: string
  positionIds: string
  pastKeys: string[]
  pastValues: string[]
}

/** Declares the inputs and outputs with the symbolic dimension names of an optimum export. */
export function declareDecoderInterface(g: GraphBuilder, d: ModelDims, withPast = true): DecoderInputs {
  const { INT64, FLOAT } = TensorProto_DataType
  const inputs: DecoderInputs = {
    inputIds: g.input('input_ids', INT64, ['batch_size', 'sequence_length']),
    attentionMask: g.input('attention_mask', INT64, ['batch_size', 'total_sequence_length']),
    positionIds: g.input('position_ids', INT64, ['batch_size', 'sequence_length']),
    pastKeys: [],
    pastValues: [],
  }
  const pastDims = ['batch_size', d.numKvHeads, 'past_sequence_length', d.headDim]
  for (let i = 0; i < (withPast ? d.numLayers : 0); i++) {
    inputs.pastKeys.push(g.input(`past_key_values.${i}.key`, FLOAT, pastDims))
    inputs.pastValues.push(g.input(`past_key_values.${i}.value`, FLOAT, pastDims))
  }
  g.output('logits', FLOAT, ['batch_size', 'sequence_length', d.vocabSize])
  const presentDims = ['batch_size', d.numKvHeads, 'total_sequence_length', d.headDim]
  for (let i = 0; i < d.numLayers; i++) {
    g.output(`present.${i}.key`, FLOAT, presentDims)
    g.output(`present.${i}.value`, FLOAT, presentDims)
  }
  return inputs
}

/**
 * The additive attention bias [batch, 1, seq, total], computed once per
 * forward and shared by every layer. Query i of the current chunk sits at
 * cache index past + i (past = total - seq) and sees key j only if
 * j <= past + i and attention_mask[j] is 1; masked scores get MASKED_SCORE.
 * Positions play no part here: they come only from position_ids.
 */
export function attentionBias(g: GraphBuilder, inputs: DecoderInputs, maskedScore = MASKED_SCORE): string {
  const second = g.constInt([1], [])
  const seqLength = g.op1('Gather', [g.op1('Shape', [inputs.inputIds]), second], { axis: 0 })
  const totalLength = g.op1('Gather', [g.op1('Shape', [inputs.attentionMask]), second], { axis: 0 })
  const pastLength = g.op1('Sub', [totalLength, seqLength])
  const one = g.constInt([1], [])
  const queryIndex = g.op1('Range', [pastLength, totalLength, one])
  const keyIndex = g.op1('Range', [g.constInt([0], []), totalLength, one])
  const visible = g.op1('LessOrEqual', [keyIndex, g.op1('Unsqueeze', [queryIndex, g.constInt([1])])])
  const causal = g.op1('Where', [visible, g.constFloat([0]), g.constFloat([maskedScore])])
  const mask = g.op1('Cast', [inputs.attentionMask], { to: TensorProto_DataType.FLOAT })
  // (mask - 1) * 1e9: 0 where the mask is 1, MASKED_SCORE where it is 0.
  const padding = g.op1('Mul', [g.op1('Sub', [mask, g.constFloat([1])]), g.constFloat([-maskedScore])])
  const padding4d = g.op1('Unsqueeze', [padding, g.constInt([1, 2])])
  return g.op1('Add', [padding4d, causal])
}

/**
 * Scaled dot-product attention of one layer. q, k, v come in as
 * [batch, seq, heads, head_dim]; the new keys and values are appended to the
 * past as present.{layer}.*; returns the context as [batch, seq, heads * head_dim].
 * Grouped-query attention folds each kv head's group of query heads into the
 * query-length axis ([b, kv, group * seq, d]), so one batched MatMul per step
 * serves the whole group without repeating keys the way HF repeat_kv does.
 */
export function attention(
  g: GraphBuilder,
  d: ModelDims,
  layer: number,
  q: string,
  k: string,
  v: string,
  inputs: DecoderInputs,
  bias: string,
): string {
  const toHeadsFirst = { perm: [0, 2, 1, 3] }
  const group = d.numHeads / d.numKvHeads
  // Without a past (a merged decoder's first pass), the present is this pass's keys alone.
  const present = (past: string | undefined, x: string, name: string): string =>
    past === undefined
      ? g.op1('Transpose', [x], toHeadsFirst, name)
      : g.op1('Concat', [past, g.op1('Transpose', [x], toHeadsFirst)], { axis: 2 }, name)
  const presentKey = present(inputs.pastKeys[layer], k, `present.${layer}.key`)
  const presentValue = present(inputs.pastValues[layer], v, `present.${layer}.value`)
  const query = g.op1('Mul', [g.op1('Transpose', [q], toHeadsFirst), g.constFloat([1 / Math.sqrt(d.headDim)])])
  const regroup = (x: string, shape: number[]): string => (group > 1 ? g.op1('Reshape', [x, g.constInt(shape)]) : x)
  // In the Reshape shapes below, 0 keeps the input's dimension (batch, or the total length).
  const keyT = g.op1('Transpose', [presentKey], { perm: [0, 1, 3, 2] })
  const scores = regroup(g.op1('MatMul', [regroup(query, [0, d.numKvHeads, -1, d.headDim]), keyT]), [0, d.numHeads, -1, 0])
  const probs = g.op1('Softmax', [g.op1('Add', [scores, bias])], { axis: -1 })
  const context = regroup(g.op1('MatMul', [regroup(probs, [0, d.numKvHeads, -1, 0]), presentValue]), [0, d.numHeads, -1, d.headDim])
  const merged = g.op1('Transpose', [context], toHeadsFirst)
  return g.op1('Reshape', [merged, g.constInt([0, 0, d.numHeads * d.headDim])])
}

/**
 * logits = h · Eᵀ with the embedding itself as the head: Gemm's transB reads
 * E [vocab, hidden] transposed in place, so the file holds no second copy of
 * the embedding and the runtime never transposes it.
 */
export function tiedHead(g: GraphBuilder, d: ModelDims, hidden: string, embedding: string, inputs: DecoderInputs): void {
  const flat = g.op1('Reshape', [hidden, g.constInt([-1, d.hiddenSize])])
  const logits = g.op1('Gemm', [flat, embedding], { transB: 1 })
  const shape = g.op1('Concat', [g.op1('Shape', [inputs.inputIds]), g.constInt([d.vocabSize])], { axis: 0 })
  g.op1('Reshape', [logits, shape], {}, 'logits')
}
