import { float, GraphBuilder } from './onnx-graph-builder.js'
import { attention, attentionBias, declareDecoderInterface, MASKED_SCORE, tiedHead, type DecoderGraphOptions } from './onnx-decoder-parts.js'
import { weight, type ModelWeights } from './weights.js'

/** HF "gelu_new": 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))); opset 17 has no Gelu op. */
function geluTanh(g: GraphBuilder, x: string): string {
  const cubic = g.op1('Mul', [g.op1('Pow', [x, g.constFloat([3])]), g.constFloat([0.044715])])
  const inner = g.op1('Mul', [g.op1('Add', [x, cubic]), g.constFloat([Math.sqrt(2 / Math.PI)])])
  const onePlusTanh = g.op1('Add', [g.op1('Tanh', [inner]), g.constFloat([1])])
  return g.op1('Mul', [g.op1('Mul', [x, onePlusTanh]), g.constFloat([0.5])])
}

/** GPT-2 decoder graph in the Hugging Face optimum export layout (README, "Models") from the given weights. */
export function buildGpt2Graph(weights: ModelWeights, opts: DecoderGraphOptions = {}): GraphBuilder {
  const d = weights.dims
  const g = new GraphBuilder(opts.prefix)
  const inputs = declareDecoderInterface(g, d, opts.withPast ?? true)
  const bias = attentionBias(g, inputs, opts.maskedScore ?? MASKED_SCORE)
  const tensor = (name: string): string => g.floatInitializer(name, weight(weights, name).dims, weight(weights, name).data)
  const layerNorm = (x: string, prefix: string): string =>
    g.op1('LayerNormalization', [x, tensor(`${prefix}.weight`), tensor(`${prefix}.bias`)], { axis: -1, epsilon: float(d.normEps) })
  const affine = (x: string, prefix: string): string =>
    g.op1('Add', [g.op1('MatMul', [x, tensor(`${prefix}.weight`)]), tensor(`${prefix}.bias`)])

  const wte = tensor('transformer.wte.weight')
  const tokens = g.op1('Gather', [wte, inputs.inputIds], { axis: 0 })
  const positions = g.op1('Gather', [tensor('transformer.wpe.weight'), inputs.positionIds], { axis: 0 })
  let hidden = g.op1('Add', [tokens, positions])
  const h = d.hiddenSize
  for (let i = 0; i < d.numLayers; i++) {
    const p = `transformer.h.${i}`
    const qkv = affine(layerNorm(hidden, `${p}.ln_1`), `${p}.attn.c_attn`)
    const [q, k, v] = g.op('Split', [qkv, g.constInt([h, h, h])], { axis: 2 }, 3)
    const heads = (x: string): string => g.op1('Reshape', [x, g.constInt([0, 0, d.numHeads, d.headDim])])
    const context = attention(g, d, i, heads(q), heads(k), heads(v), inputs, bias)
    hidden = g.op1('Add', [hidden, affine(context, `${p}.attn.c_proj`)])
    const inner = geluTanh(g, affine(layerNorm(hidden, `${p}.ln_2`), `${p}.mlp.c_fc`))
    hidden = g.op1('Add', [hidden, affine(inner, `${p}.mlp.c_proj`)])
  }
  tiedHead(g, d, layerNorm(hidden, 'transformer.ln_f'), wte, inputs)
  return g
}
