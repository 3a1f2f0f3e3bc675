import { TensorProto_DataType } from 'onnx-buf'
import { bytesOf, GraphBuilder } from './onnx-graph-builder.js'
import { attention, attentionBias, declareDecoderInterface, MASKED_SCORE, tiedHead, type DecoderGraphOptions } from './onnx-decoder-parts.js'
import { rotaryTables } from './rotary.js'
import { weight, type ModelWeights, type WeightTensor } from './weights.js'

/**
 * Concatenates [in, out_k] matrices along `out`, so that one MatMul computes
 * several projections of the same input (q|k|v, gate|up). Runs lazily, while
 * the writer streams the file, so only one fused matrix exists at a time.
 */
function fusedColumns(parts: WeightTensor[]): { dims: number[]; bytes: () => Uint8Array; byteLength: number } {
  const rows = parts[0].dims[0]
  const width = parts.reduce((sum, p) => sum + p.dims[1], 0)
  const bytes = (): Uint8Array => {
    const out = new Float32Array(rows * width)
    for (let r = 0; r < rows; r++) {
      let column = r * width
      for (const p of parts) {
        out.set(p.data.subarray(r * p.dims[1], (r + 1) * p.dims[1]), column)
        column += p.dims[1]
      }
    }
    return bytesOf(out)
  }
  return { dims: [rows, width], bytes, byteLength: rows * width * 4 }
}

/** HF LlamaRMSNorm as the PyTorch exporter writes it (a pattern ORT fuses into one kernel). */
export function rmsNorm(g: GraphBuilder, x: string, gain: string, eps: number): string {
  const meanSquare = g.op1('ReduceMean', [g.op1('Pow', [x, g.constFloat([2])])], { axes: [-1], keepdims: 1 })
  const rms = g.op1('Sqrt', [g.op1('Add', [meanSquare, g.constFloat([eps])])])
  return g.op1('Mul', [g.op1('Div', [x, rms]), gain])
}

/** Llama decoder graph in the Hugging Face optimum export layout (README, "Models") from the given weights. */
export function buildLlamaGraph(weights: ModelWeights, opts: DecoderGraphOptions = {}): GraphBuilder {
  const d = weights.dims
  const g = new GraphBuilder(opts.prefix)
  const inputs = declareDecoderInterface(g, d, opts.withPast ?? true)
  const bias = attentionBias(g, inputs, opts.maskedScore ?? MASKED_SCORE)
  const tensor = (name: string): string => g.floatInitializer(name, weight(weights, name).dims, weight(weights, name).data)
  const fused = (name: string, parts: string[]): string => {
    const f = fusedColumns(parts.map((p) => weight(weights, p)))
    return g.initializer(name, f.dims, TensorProto_DataType.FLOAT, f.byteLength, f.bytes)
  }

  const tables = rotaryTables(d)
  const tableDims = [d.maxPositions, d.headDim]
  // Gathered by position_ids once, [batch, seq, 1, head_dim], broadcast over heads in every layer.
  const positionTable = (name: string, data: Float32Array): string =>
    g.op1('Unsqueeze', [g.op1('Gather', [g.floatInitializer(name, tableDims, data), inputs.positionIds]), g.constInt([2])])
  const cos = positionTable('rotary.cos', tables.cos)
  const signedSin = positionTable('rotary.signed_sin', tables.signedSin)
  const halves = g.constInt([d.headDim / 2, d.headDim / 2])
  const rotate = (x: string): string => {
    const [first, second] = g.op('Split', [x, halves], { axis: 3 }, 2)
    const swapped = g.op1('Concat', [second, first], { axis: 3 })
    return g.op1('Add', [g.op1('Mul', [x, cos]), g.op1('Mul', [swapped, signedSin])])
  }

  const embedding = tensor('model.embed_tokens.weight')
  let hidden = g.op1('Gather', [embedding, inputs.inputIds], { axis: 0 })
  const qWidth = d.numHeads * d.headDim
  const kvWidth = d.numKvHeads * d.headDim
  for (let i = 0; i < d.numLayers; i++) {
    const p = `model.layers.${i}`
    const normed = rmsNorm(g, hidden, tensor(`${p}.input_layernorm.weight`), d.normEps)
    const qkvWeight = fused(`${p}.self_attn.qkv_proj.weight`, ['q', 'k', 'v'].map((x) => `${p}.self_attn.${x}_proj.weight`))
    const [q, k, v] = g.op('Split', [g.op1('MatMul', [normed, qkvWeight]), g.constInt([qWidth, kvWidth, kvWidth])], { axis: 2 }, 3)
    const heads = (x: string, n: number): string => g.op1('Reshape', [x, g.constInt([0, 0, n, d.headDim])])
    const context = attention(g, d, i, rotate(heads(q, d.numHeads)), rotate(heads(k, d.numKvHeads)), heads(v, d.numKvHeads), inputs, bias)
    hidden = g.op1('Add', [hidden, g.op1('MatMul', [context, tensor(`${p}.self_attn.o_proj.weight`)])])

    const normed2 = rmsNorm(g, hidden, tensor(`${p}.post_attention_layernorm.weight`), d.normEps)
    const gateUpWeight = fused(`${p}.mlp.gate_up_proj.weight`, [`${p}.mlp.gate_proj.weight`, `${p}.mlp.up_proj.weight`])
    const sizes = g.constInt([d.intermediateSize, d.intermediateSize])
    const [gate, up] = g.op('Split', [g.op1('MatMul', [normed2, gateUpWeight]), sizes], { axis: 2 }, 2)
    const silu = g.op1('Mul', [gate, g.op1('Sigmoid', [gate])])
    const down = g.op1('MatMul', [g.op1('Mul', [silu, up]), tensor(`${p}.mlp.down_proj.weight`)])
    hidden = g.op1('Add', [hidden, down])
  }
  tiedHead(g, d, rmsNorm(g, hidden, tensor('model.norm.weight'), d.normEps), embedding, inputs)
  return g
}
