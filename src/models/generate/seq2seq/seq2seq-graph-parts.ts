/**
 * What the encoder and decoder graphs of every generated encoder-decoder
 * family share: optimum's interface (names and symbolic dims of
 * `--task text2text-generation-with-past`), the attention biases, multi-head
 * attention, the self-attention past and the cross-attention keys/values.
 *
 * As in optimum's with-past decoder, there is no decoder attention mask and no
 * position input: the query positions are past length + i for every row.
 */
import { TensorProto_DataType } from 'onnx-buf'
import { MASKED_SCORE } from '../onnx-decoder-parts.js'
import type { GraphBuilder } from '../onnx-graph-builder.js'
import type { Seq2seqDims } from './seq2seq-dims.js'
import type { Seq2seqWeights } from './seq2seq-weights.js'

const { INT64, FLOAT } = TensorProto_DataType

export interface EncoderIo {
  inputIds: string
  attentionMask: string
}

export function declareEncoder(g: GraphBuilder, d: Seq2seqDims): EncoderIo {
  const dims = ['batch_size', 'encoder_sequence_length']
  g.output('last_hidden_state', FLOAT, [...dims, d.hiddenSize])
  return { inputIds: g.input('input_ids', INT64, dims), attentionMask: g.input('attention_mask', INT64, dims) }
}

export interface DecoderIo {
  withPast: boolean
  inputIds: string
  encoderMask: string
  encoderHidden: string
  /** With past only: per layer, the self-attention past and the cross-attention keys/values. */
  pastSelf: Array<{ key: string; value: string }>
  pastCross: Array<{ key: string; value: string }>
}

/** decoder_model.onnx (no past) or decoder_with_past_model.onnx. */
export function declareDecoder(g: GraphBuilder, d: Seq2seqDims, withPast: boolean): DecoderIo {
  const S = 'encoder_sequence_length'
  const io: DecoderIo = {
    withPast,
    encoderMask: g.input('encoder_attention_mask', INT64, ['batch_size', S]),
    inputIds: g.input('input_ids', INT64, ['batch_size', 'decoder_sequence_length']),
    encoderHidden: g.input('encoder_hidden_states', FLOAT, ['batch_size', S, d.hiddenSize]),
    pastSelf: [],
    pastCross: [],
  }
  const kvDims = (len: string) => ['batch_size', d.numHeads, len, d.headDim]
  if (withPast) {
    for (let i = 0; i < d.numLayers; i++) {
      const pair = (part: string, len: string) => ({
        key: g.input(`past_key_values.${i}.${part}.key`, FLOAT, kvDims(len)),
        value: g.input(`past_key_values.${i}.${part}.value`, FLOAT, kvDims(len)),
      })
      io.pastSelf.push(pair('decoder', 'past_decoder_sequence_length'))
      io.pastCross.push(pair('encoder', S))
    }
  }
  g.output('logits', FLOAT, ['batch_size', 'decoder_sequence_length', d.vocabSize])
  for (let i = 0; i < d.numLayers; i++) {
    for (const kv of ['key', 'value']) g.output(`present.${i}.decoder.${kv}`, FLOAT, kvDims('past_decoder_sequence_length + decoder_sequence_length'))
    if (!withPast) for (const kv of ['key', 'value']) g.output(`present.${i}.encoder.${kv}`, FLOAT, kvDims(S))
  }
  return io
}

/** [batch, 1, 1, keys]: 0 where the mask is 1, MASKED_SCORE where it is 0. */
export function keyPaddingBias(g: GraphBuilder, mask: string): string {
  const m = g.op1('Cast', [mask], { to: FLOAT })
  return g.op1('Unsqueeze', [g.op1('Mul', [g.op1('Sub', [m, g.constFloat([1])]), g.constFloat([-MASKED_SCORE])]), g.constInt([1, 2])])
}

function dim(g: GraphBuilder, x: string, axis: number): string {
  return g.op1('Gather', [g.op1('Shape', [x]), g.constInt([axis], [])], { axis: 0 })
}

export interface DecoderPositions {
  /** Positions of the fed tokens: past, past + 1, ... */
  query: string
  /** Positions of every key: 0 .. past + fed - 1. */
  key: string
}

/** The past length comes from the first layer's self-attention past (0 without one). */
export function decoderPositions(g: GraphBuilder, io: DecoderIo): DecoderPositions {
  const past = io.withPast ? dim(g, io.pastSelf[0].key, 2) : g.constInt([0], [])
  const total = g.op1('Add', [past, dim(g, io.inputIds, 1)])
  const one = g.constInt([1], [])
  return { query: g.op1('Range', [past, total, one]), key: g.op1('Range', [g.constInt([0], []), total, one]) }
}

/** Positions 0 .. len - 1 of an encoder input. */
export function encoderPositions(g: GraphBuilder, io: EncoderIo): string {
  return g.op1('Range', [g.constInt([0], []), dim(g, io.inputIds, 1), g.constInt([1], [])])
}

/** [queries, keys]: a key is visible to a query at or after it. */
export function causalBias(g: GraphBuilder, pos: DecoderPositions): string {
  const visible = g.op1('LessOrEqual', [pos.key, g.op1('Unsqueeze', [pos.query, g.constInt([1])])])
  return g.op1('Where', [visible, g.constFloat([0]), g.constFloat([MASKED_SCORE])])
}

/** x · W (+ b), W in [in, out]. */
export function linear(g: GraphBuilder, x: string, w: string, b?: string): string {
  const y = g.op1('MatMul', [x, w])
  return b === undefined ? y : g.op1('Add', [y, b])
}

/** [batch, len, heads * head_dim] → [batch, heads, len, head_dim]. */
export function splitHeads(g: GraphBuilder, d: Seq2seqDims, x: string): string {
  return g.op1('Transpose', [g.op1('Reshape', [x, g.constInt([0, 0, d.numHeads, d.headDim])])], { perm: [0, 2, 1, 3] })
}

/** softmax(q·kᵀ · scale + Σ biases) · v, back to [batch, len, heads * head_dim]. */
export function attend(g: GraphBuilder, d: Seq2seqDims, q: string, k: string, v: string, biases: string[], scale: number): string {
  let scores = g.op1('MatMul', [q, g.op1('Transpose', [k], { perm: [0, 1, 3, 2] })])
  if (scale !== 1) scores = g.op1('Mul', [scores, g.constFloat([scale])])
  for (const b of biases) scores = g.op1('Add', [scores, b])
  const context = g.op1('MatMul', [g.op1('Softmax', [scores], { axis: -1 }), v])
  return g.op1('Reshape', [g.op1('Transpose', [context], { perm: [0, 2, 1, 3] }), g.constInt([0, 0, d.numHeads * d.headDim])])
}

/** The layer's self-attention keys/values: the past (if any) plus the new ones, output as present.{i}.decoder.*. */
export function selfKeysValues(g: GraphBuilder, io: DecoderIo, layer: number, k: string, v: string): { key: string; value: string } {
  const out = (kv: 'key' | 'value', x: string) => {
    const name = `present.${layer}.decoder.${kv}`
    return io.withPast ? g.op1('Concat', [io.pastSelf[layer][kv], x], { axis: 2 }, name) : g.op1('Identity', [x], {}, name)
  }
  return { key: out('key', k), value: out('value', v) }
}

/**
 * The layer's cross-attention keys/values: projected from the encoder output
 * (and output as present.{i}.encoder.*) by the no-past decoder; taken from the
 * past inputs by the with-past decoder.
 */
export function crossKeysValues(g: GraphBuilder, io: DecoderIo, layer: number, project: () => { key: string; value: string }): { key: string; value: string } {
  if (io.withPast) return io.pastCross[layer]
  const { key, value } = project()
  return {
    key: g.op1('Identity', [key], {}, `present.${layer}.encoder.key`),
    value: g.op1('Identity', [value], {}, `present.${layer}.encoder.value`),
  }
}

/** logits = scale · h · Wᵀ with the head W [vocab, hidden] (as an embedding is laid out). */
export function outputLogits(g: GraphBuilder, d: Seq2seqDims, hidden: string, embedding: string, io: DecoderIo, scale = 1): void {
  const h = scale === 1 ? hidden : g.op1('Mul', [hidden, g.constFloat([scale])])
  const flat = g.op1('Gemm', [g.op1('Reshape', [h, g.constInt([-1, d.hiddenSize])]), embedding], { transB: 1 })
  const shape = g.op1('Concat', [g.op1('Shape', [io.inputIds]), g.constInt([d.vocabSize])], { axis: 0 })
  g.op1('Reshape', [flat, shape], {}, 'logits')
}

/** The graph's initializer for a weight, added the first time it is asked for. */
export function weightsOf(g: GraphBuilder, w: Seq2seqWeights): (name: string) => string {
  const added = new Map<string, string>()
  return (name) => {
    const existing = added.get(name)
    if (existing) return existing
    const t = w.tensors.get(name)
    if (!t) throw new Error(`model has no weight named ${name}`)
    const id = g.floatInitializer(name, t.dims, t.data)
    added.set(name, id)
    return id
  }
}
