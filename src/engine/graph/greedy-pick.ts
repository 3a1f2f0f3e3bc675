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
 * vocabulary; it runs after float32_io, so it reads float32 logits.
 */
import { TensorProto_DataType, type ModelProto, type NodeProto } from 'onnx-buf'
import { addGraphOutput, addInt64Constant, defaultOpset, newNode, withInts } from './graph-edit.js'
import type { GraphRewrite } from './graph-rewrite.js'

export const GREEDY_TOKEN = 'greedy_token'
export const GREEDY_LOGPROB = 'greedy_logprob'
const LOGITS = 'logits'
const P = '/prefixd/greedy'

/** A reduction over the last axis; `axes` moved from an attribute to an input in opset 13 (ReduceSum) or 18 (the others). */
function reduceLastAxis(op: string, opset: number, axesName: string, input: string, output: string, keepdims: number): NodeProto {
  const axesAsInput = op === 'ReduceSum' ? opset >= 13 : opset >= 18
  const node = axesAsInput
    ? newNode(op, `${P}/${op}`, [input, axesName], [output])
    : newNode(op, `${P}/${op}`, [input], [output], { axes: [-1] })
  return withInts(node, { keepdims })
}

export const greedyPick: GraphRewrite = {
  name: 'greedy_pick',
  needed(model: ModelProto) {
    const graph = model.graph
    return graph !== undefined && defaultOpset(model) >= 11 && graph.output.some((o) => o.name === LOGITS) && !graph.output.some((o) => o.name === GREEDY_TOKEN)
  },
  apply(model: ModelProto) {
    const graph = model.graph!
    const opset = defaultOpset(model)
    const axes = addInt64Constant(graph, `${P}/axes`, [-1], [1])
    const max = `${P}/max`
    const shifted = `${P}/shifted`
    const exp = `${P}/exp`
    const sum = `${P}/sum`
    const logSum = `${P}/log_sum`
    graph.node.push(
      withInts(newNode('ArgMax', `${P}/ArgMax`, [LOGITS], [GREEDY_TOKEN]), { axis: -1, keepdims: 0 }),
      // The chosen token is the maximum, so its log-softmax is max - (max + log Σ e^(x-max)).
      // A NaN anywhere, or an infinite maximum (∞ - ∞), makes the sum and so the logprob NaN.
      reduceLastAxis('ReduceMax', opset, axes, LOGITS, max, 1),
      newNode('Sub', `${P}/Sub`, [LOGITS, max], [shifted]),
      newNode('Exp', `${P}/Exp`, [shifted], [exp]),
      reduceLastAxis('ReduceSum', opset, axes, exp, sum, 0),
      newNode('Log', `${P}/Log`, [sum], [logSum]),
      newNode('Neg', `${P}/Neg`, [logSum], [GREEDY_LOGPROB]),
    )
    addGraphOutput(graph, GREEDY_TOKEN, TensorProto_DataType.INT64, ['batch_size', 'logits_positions'])
    addGraphOutput(graph, GREEDY_LOGPROB, TensorProto_DataType.FLOAT, ['batch_size', 'logits_positions'])
  },
}
