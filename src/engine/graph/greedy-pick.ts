/**
 * The greedy pick inside the graph: two more outputs beside `logits`,
 *   greedy_token    [batch, positions] int64: the argmax over the vocabulary
 *                   (the lowest id on ties, as the engine's own scan);
 *   greedy_logprob  [batch, positions] float32: that token's raw log-softmax,
 *                   -log Σ exp(logit - max). NaN when a logit is NaN or the
 *                   maximum is not finite: the pick is then not to be trusted,
 *                   and the engine decides from the logits themselves (its
 *                   sampler counts NaN as -Infinity and refuses a row with
 *                   no finite maximum); ForwardRunner fetches them for that.
 * and one input,
 *   greedy_logprob_wanted  [1] bool: false when no row of the pass reports
 *                   its logprob. The log-softmax is then skipped (an If) and
 *                   greedy_logprob is only the soundness mark: 0, or NaN
 *                   when the row's logits do not sum to a finite number (a
 *                   NaN, an infinity; a row that also holds -Infinity beside
 *                   finite logits is marked too, and the engine then
 *                   decides from its logits, correctly, a pass later).
 *
 * Why: a greedy row without repetition penalty or top-logprobs needs nothing
 * else from its 32k logits. Scanning them in JavaScript (the argmax, then the
 * log-sum-exp for the reported logprob) cost ~0.2 ms per row per step, about
 * a third of the forward pass at batch 16; ONNX Runtime does the same
 * with vectorized kernels on its own threads. And when every row of a pass
 * takes this pick, the engine does not fetch `logits` at all, so
 * onnxruntime-node does not copy them (batch × vocabulary floats per step).
 *
 * Applies to any graph with a `logits` output whose last axis is the
 * vocabulary; it runs after float32_io, so it reads float32 logits. Where the
 * graph declares the vocabulary size and it divides into chunks, the argmax
 * is a two-level scan (chunkedArgMax: ONNX Runtime's ArgMax is a scalar loop).
 *
 * Why the If: ONNX Runtime runs every node of a graph whatever a run fetches,
 * and the log-softmax (an Exp over batch × vocabulary floats) took 150 µs of
 * kernel time per decode pass at batch 16 on the bench model (the If with it
 * off: 64 µs), paid by every request, though few ask for logprobs.
 */
import { TensorProto_DataType, type GraphProto, type ModelProto, type NodeProto } from 'onnx-buf'
import { addGraphInput, addGraphOutput, addInt64Constant, defaultOpset, newNode, withBranches, withInts } from './graph-edit.js'
import type { GraphRewrite } from './graph-rewrite.js'

export const GREEDY_TOKEN = 'greedy_token'
export const GREEDY_LOGPROB = 'greedy_logprob'
export const GREEDY_LOGPROB_WANTED = 'greedy_logprob_wanted'
const LOGITS = 'logits'
const P = '/prefixd/greedy'

/** A reduction over the last axis; `axes` moved from an attribute to an input in opset 13 (ReduceSum) or 18 (the others). */
function reduceLastAxis(op: string, opset: number, axesName: string, input: string, output: string, keepdims: number, name = `${P}/${op}`): NodeProto {
  const axesAsInput = op === 'ReduceSum' ? opset >= 13 : opset >= 18
  const node = axesAsInput ? newNode(op, name, [input, axesName], [output]) : newNode(op, name, [input], [output], { axes: [-1] })
  return withInts(node, { keepdims })
}

/** The vocabulary size, when the graph declares the logits' last axis as a number. */
function declaredVocab(graph: GraphProto): number | null {
  const type = graph.output.find((o) => o.name === LOGITS)?.type
  const dims = type?.value.case === 'tensorType' ? type.value.value.shape?.dim : undefined
  const last = dims?.[dims.length - 1]?.value
  return last?.case === 'dimValue' ? Number(last.value) : null
}

/**
 * How to cut a vocabulary of `vocab` into equal chunks for the two-level
 * argmax: the most chunks up to √vocab that divide it, so that both scans
 * (over the chunks' maxima, then inside the winning chunk) are short. Null
 * when no such cut exists (a prime vocabulary) or the opset lacks GatherND's
 * batch_dims (12): one ArgMax over the whole vocabulary then.
 */
export function vocabChunks(vocab: number | null, opset: number): { chunks: number; width: number } | null {
  if (vocab === null || opset < 12) return null
  for (let chunks = Math.floor(Math.sqrt(vocab)); chunks >= 2; chunks--) {
    if (vocab % chunks === 0) return { chunks, width: vocab / chunks }
  }
  return null
}

/**
 * The argmax as a two-level scan. ONNX Runtime's ArgMax is a scalar loop
 * (about 200 µs for 16 rows of 32,000 on the bench machine, more than the
 * rest of the pick), while ReduceMax is vectorized: so take each chunk's
 * maximum with ReduceMax, the first chunk holding the row's maximum with an
 * ArgMax over the chunk maxima, then the first index of the maximum inside
 * that chunk. The first chunk holding the maximum holds its first index, so
 * ties still go to the lowest id. Returns the flat [rows, 1] token ids and
 * the [rows, 1] row maxima (the maximum of the chunk maxima).
 */
function chunkedArgMax(opset: number, axes: string, graph: GraphProto, cut: { chunks: number; width: number }): { nodes: NodeProto[]; token: string; max: string } {
  const view = addInt64Constant(graph, `${P}/chunked_shape`, [-1, cut.chunks, cut.width], [3])
  const width = addInt64Constant(graph, `${P}/chunk_width`, [cut.width], [1])
  const n = (name: string) => `${P}/${name}`
  const nodes = [
    newNode('Reshape', n('ChunkView'), [LOGITS, view], [n('chunked')]),
    reduceLastAxis('ReduceMax', opset, axes, n('chunked'), n('chunk_max'), 0, n('ChunkMax')),
    withInts(newNode('ArgMax', n('ArgMaxChunk'), [n('chunk_max')], [n('chunk')]), { axis: -1, keepdims: 1 }),
    withInts(newNode('GatherND', n('GatherChunk'), [n('chunked'), n('chunk')], [n('best_chunk')]), { batch_dims: 1 }),
    withInts(newNode('ArgMax', n('ArgMaxInChunk'), [n('best_chunk')], [n('in_chunk')]), { axis: -1, keepdims: 1 }),
    newNode('Mul', n('ChunkStart'), [n('chunk'), width], [n('chunk_start')]),
    newNode('Add', n('Token'), [n('chunk_start'), n('in_chunk')], [n('flat_token')]),
    reduceLastAxis('ReduceMax', opset, axes, n('chunk_max'), n('flat_max'), 1, n('RowMax')),
  ]
  return { nodes, token: n('flat_token'), max: n('flat_max') }
}

/** The rewrite; `chunked: false` always scans the whole vocabulary with one ArgMax (what bench/ compares against). */
export function greedyPickRewrite({ chunked }: { chunked: boolean }): GraphRewrite {
  return {
    name: 'greedy_pick',
    needed(model: ModelProto) {
      const graph = model.graph
      return graph !== undefined && defaultOpset(model) >= 11 && graph.output.some((o) => o.name === LOGITS) && !graph.output.some((o) => o.name === GREEDY_TOKEN)
    },
    apply(model: ModelProto) {
      const graph = model.graph!
      const opset = defaultOpset(model)
      const axes = addInt64Constant(graph, `${P}/axes`, [-1], [1])
      const cut = chunked ? vocabChunks(declaredVocab(graph), opset) : null
      if (cut === null) graph.node.push(...wholeVocabPick(opset, axes))
      else graph.node.push(...chunkedPick(opset, axes, graph, cut))
      addGraphInput(graph, GREEDY_LOGPROB_WANTED, TensorProto_DataType.BOOL, [1])
      addGraphOutput(graph, GREEDY_TOKEN, TensorProto_DataType.INT64, ['batch_size', 'logits_positions'])
      addGraphOutput(graph, GREEDY_LOGPROB, TensorProto_DataType.FLOAT, ['batch_size', 'logits_positions'])
    },
  }
}

export const greedyPick: GraphRewrite = greedyPickRewrite({ chunked: true })

/**
 * The log-softmax of the maximum when the pass wants it, from `values` (the
 * logits, the vocabulary last) and their maximum `max` (kept as an axis):
 * max - (max + log Σ e^(x-max)) = -log Σ e^(x-max). A NaN anywhere, or an
 * infinite maximum (∞ - ∞), makes the sum and so the logprob NaN. Else only
 * the soundness mark: Σx - Σx, which is 0 where the sum is finite and NaN
 * where it is not.
 */
function logprobNodes(opset: number, axes: string, values: string, max: string, output: string): NodeProto[] {
  const n = (name: string) => `${P}/${name}`
  const logprob = [
    newNode('Sub', n('Sub'), [values, max], [n('shifted')]),
    newNode('Exp', n('Exp'), [n('shifted')], [n('exp')]),
    reduceLastAxis('ReduceSum', opset, axes, n('exp'), n('sum'), 0, n('SumExp')),
    newNode('Log', n('Log'), [n('sum')], [n('log_sum')]),
    newNode('Neg', n('Neg'), [n('log_sum')], [n('logprob')]),
  ]
  const mark = [
    reduceLastAxis('ReduceSum', opset, axes, values, n('plain_sum'), 0, n('PlainSum')),
    newNode('Sub', n('SoundMark'), [n('plain_sum'), n('plain_sum')], [n('sound_mark')]),
  ]
  const branch = newNode('If', n('LogprobWanted'), [GREEDY_LOGPROB_WANTED], [output])
  return [withBranches(branch, TensorProto_DataType.FLOAT, { then_branch: { nodes: logprob, output: n('logprob') }, else_branch: { nodes: mark, output: n('sound_mark') } })]
}

/** One ArgMax over the whole vocabulary (a vocabulary the chunked scan cannot cut, or an old opset). */
function wholeVocabPick(opset: number, axes: string): NodeProto[] {
  const max = `${P}/max`
  return [
    withInts(newNode('ArgMax', `${P}/ArgMax`, [LOGITS], [GREEDY_TOKEN]), { axis: -1, keepdims: 0 }),
    reduceLastAxis('ReduceMax', opset, axes, LOGITS, max, 1),
    ...logprobNodes(opset, axes, LOGITS, max, GREEDY_LOGPROB),
  ]
}

/**
 * The chunked argmax on the logits viewed as [rows, vocab] (rows = batch ×
 * positions); the logprob sums over the same rows as the whole-vocabulary
 * pick does; both outputs are reshaped back to the logits' leading axes.
 */
function chunkedPick(opset: number, axes: string, graph: GraphProto, cut: { chunks: number; width: number }): NodeProto[] {
  const rowsView = addInt64Constant(graph, `${P}/rows_shape`, [-1, cut.chunks * cut.width], [2])
  const starts = addInt64Constant(graph, `${P}/lead_start`, [0], [1])
  const ends = addInt64Constant(graph, `${P}/lead_end`, [-1], [1])
  const n = (name: string) => `${P}/${name}`
  const argmax = chunkedArgMax(opset, axes, graph, cut)
  return [
    ...argmax.nodes,
    newNode('Reshape', n('RowsView'), [LOGITS, rowsView], [n('rows')]),
    ...logprobNodes(opset, axes, n('rows'), argmax.max, n('flat_logprob')),
    newNode('Shape', n('Shape'), [LOGITS], [n('logits_shape')]),
    newNode('Slice', n('LeadingAxes'), [n('logits_shape'), starts, ends], [n('lead_shape')]),
    newNode('Reshape', n('TokenShape'), [argmax.token, n('lead_shape')], [GREEDY_TOKEN]),
    newNode('Reshape', n('LogprobShape'), [n('flat_logprob'), n('lead_shape')], [GREEDY_LOGPROB]),
  ]
}
