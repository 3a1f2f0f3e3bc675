import { weight, type ModelWeights } from '../../src/models/generate/index.js'
import type { PrefixKV } from '../../src/domain/prefix-kv.js'
import { geluTanh, layerNorm, matVec, rmsNorm, rotate, rowsDot, silu, softmax } from './reference-math.js'

/**
 * A plain-TypeScript forward pass of one sequence through a generated model
 * (llama or gpt2), from the same weights the ONNX writer reads: the yardstick
 * the ONNX graph is tested against. `prefix` sits in the past ahead of the
 * tokens, as prefix tuning puts it; `positions` are the tokens' position ids
 * (with a prefix of P virtual tokens, PEFT numbers the tokens from P).
 * Returns the logits at every token position.
 */
export function referenceForward(weights: ModelWeights, tokens: number[], positions: number[], prefix?: PrefixKV): Float64Array[] {
  const d = weights.dims
  if (positions.length !== tokens.length) throw new Error('one position id per token')
  if (prefix && (prefix.numLayers !== d.numLayers || prefix.numKvHeads !== d.numKvHeads || prefix.headDim !== d.headDim)) {
    throw new Error('prefix shape does not match the model')
  }
  // cache[layer][kvHead] holds one key (or value) vector per past entry, prefix first.
  const keys: Float64Array[][][] = []
  const values: Float64Array[][][] = []
  for (let layer = 0; layer < d.numLayers; layer++) {
    keys.push(prefixRows(prefix, prefix?.keys[layer], d.numKvHeads, d.headDim))
    values.push(prefixRows(prefix, prefix?.values[layer], d.numKvHeads, d.headDim))
  }
  // Token by token: each sees the prefix and the tokens before it, which is the causal mask.
  return tokens.map((token, t) => {
    const hidden = d.arch === 'llama' ? llamaToken(weights, token, positions[t], keys, values) : gpt2Token(weights, token, positions[t], keys, values)
    return rowsDot(weight(weights, d.arch === 'llama' ? 'model.embed_tokens.weight' : 'transformer.wte.weight').data, hidden, d.vocabSize)
  })
}

function prefixRows(prefix: PrefixKV | undefined, data: Float32Array | undefined, kvHeads: number, headDim: number): Float64Array[][] {
  const rows: Float64Array[][] = []
  for (let head = 0; head < kvHeads; head++) {
    const perHead: Float64Array[] = []
    for (let p = 0; p < (prefix?.numVirtualTokens ?? 0); p++) {
      const start = (head * prefix!.numVirtualTokens + p) * headDim
      perHead.push(Float64Array.from(data!.subarray(start, start + headDim)))
    }
    rows.push(perHead)
  }
  return rows
}

function embeddingRow(weights: ModelWeights, name: string, row: number): Float64Array {
  const w = weight(weights, name)
  const width = w.dims[1]
  if (row < 0 || row >= w.dims[0]) throw new Error(`${name}: row ${row} out of range`)
  return Float64Array.from(w.data.subarray(row * width, (row + 1) * width))
}

function headSlice(x: Float64Array, head: number, headDim: number): Float64Array {
  return x.slice(head * headDim, (head + 1) * headDim)
}

/**
 * Appends this token's key/value heads to the cache and returns the attention
 * context [numHeads * headDim]; query head h reads kv head h / group (HF repeat_kv).
 */
function attend(weights: ModelWeights, q: Float64Array, k: Float64Array, v: Float64Array, layerKeys: Float64Array[][], layerValues: Float64Array[][]): Float64Array {
  const d = weights.dims
  for (let head = 0; head < d.numKvHeads; head++) {
    layerKeys[head].push(headSlice(k, head, d.headDim))
    layerValues[head].push(headSlice(v, head, d.headDim))
  }
  const group = d.numHeads / d.numKvHeads
  const context = new Float64Array(d.numHeads * d.headDim)
  for (let head = 0; head < d.numHeads; head++) {
    const kvHead = Math.floor(head / group)
    const query = headSlice(q, head, d.headDim)
    const scores = layerKeys[kvHead].map((key) => {
      let dot = 0
      for (let i = 0; i < d.headDim; i++) dot += query[i] * key[i]
      return dot / Math.sqrt(d.headDim)
    })
    softmax(scores).forEach((p, j) => {
      const value = layerValues[kvHead][j]
      for (let i = 0; i < d.headDim; i++) context[head * d.headDim + i] += p * value[i]
    })
  }
  return context
}

function addInPlace(x: Float64Array, y: Float64Array): void {
  for (let i = 0; i < x.length; i++) x[i] += y[i]
}

function llamaToken(weights: ModelWeights, token: number, position: number, keys: Float64Array[][][], values: Float64Array[][][]): Float64Array {
  const d = weights.dims
  const w = (name: string): Float32Array => weight(weights, name).data
  const x = embeddingRow(weights, 'model.embed_tokens.weight', token)
  for (let layer = 0; layer < d.numLayers; layer++) {
    const p = `model.layers.${layer}`
    const normed = rmsNorm(x, w(`${p}.input_layernorm.weight`), d.normEps)
    const q = matVec(normed, w(`${p}.self_attn.q_proj.weight`), d.numHeads * d.headDim)
    const k = matVec(normed, w(`${p}.self_attn.k_proj.weight`), d.numKvHeads * d.headDim)
    const v = matVec(normed, w(`${p}.self_attn.v_proj.weight`), d.numKvHeads * d.headDim)
    for (let head = 0; head < d.numHeads; head++) rotateHead(q, head, d.headDim, position, d.ropeTheta)
    for (let head = 0; head < d.numKvHeads; head++) rotateHead(k, head, d.headDim, position, d.ropeTheta)
    const context = attend(weights, q, k, v, keys[layer], values[layer])
    addInPlace(x, matVec(context, w(`${p}.self_attn.o_proj.weight`), d.hiddenSize))
    const normed2 = rmsNorm(x, w(`${p}.post_attention_layernorm.weight`), d.normEps)
    const gate = matVec(normed2, w(`${p}.mlp.gate_proj.weight`), d.intermediateSize)
    const up = matVec(normed2, w(`${p}.mlp.up_proj.weight`), d.intermediateSize)
    const act = gate.map((g, i) => silu(g) * up[i])
    addInPlace(x, matVec(act, w(`${p}.mlp.down_proj.weight`), d.hiddenSize))
  }
  return rmsNorm(x, w('model.norm.weight'), d.normEps)
}

function rotateHead(x: Float64Array, head: number, headDim: number, position: number, theta: number): void {
  const view = x.subarray(head * headDim, (head + 1) * headDim)
  rotate(view, position, theta)
}

function gpt2Token(weights: ModelWeights, token: number, position: number, keys: Float64Array[][][], values: Float64Array[][][]): Float64Array {
  const d = weights.dims
  const h = d.hiddenSize
  const w = (name: string): Float32Array => weight(weights, name).data
  const x = embeddingRow(weights, 'transformer.wte.weight', token)
  addInPlace(x, embeddingRow(weights, 'transformer.wpe.weight', position))
  for (let layer = 0; layer < d.numLayers; layer++) {
    const p = `transformer.h.${layer}`
    const normed = layerNorm(x, w(`${p}.ln_1.weight`), w(`${p}.ln_1.bias`), d.normEps)
    const qkv = matVec(normed, w(`${p}.attn.c_attn.weight`), 3 * h, w(`${p}.attn.c_attn.bias`))
    const context = attend(weights, qkv.slice(0, h), qkv.slice(h, 2 * h), qkv.slice(2 * h), keys[layer], values[layer])
    addInPlace(x, matVec(context, w(`${p}.attn.c_proj.weight`), h, w(`${p}.attn.c_proj.bias`)))
    const normed2 = layerNorm(x, w(`${p}.ln_2.weight`), w(`${p}.ln_2.bias`), d.normEps)
    const inner = matVec(normed2, w(`${p}.mlp.c_fc.weight`), d.intermediateSize, w(`${p}.mlp.c_fc.bias`)).map(geluTanh)
    addInPlace(x, matVec(inner, w(`${p}.mlp.c_proj.weight`), h, w(`${p}.mlp.c_proj.bias`)))
  }
  return layerNorm(x, w('transformer.ln_f.weight'), w('transformer.ln_f.bias'), d.normEps)
}
