import * as ort from 'onnxruntime-node'
import type { ModelDims } from '../../src/models/generate/index.js'
import { fillNormal, mulberry32 } from '../../src/models/generate/prng.js'
import type { PrefixKV } from '../../src/domain/prefix-kv.js'

/**
 * Feeds for an optimum-layout decoder laid out the way the server batches
 * rows: the past padded to the longest prefix with each prefix right-aligned
 * (mask 0 on the unused slots, which hold finite garbage to prove the mask
 * hides them), prompts left-padded (pad id 0, position 0, mask 0).
 */
export interface BatchRow {
  tokens: number[]
  positions: number[]
  prefix?: PrefixKV
}

export interface BatchStep {
  feeds: Record<string, ort.Tensor>
  /** The attention mask of each row, past + current. */
  mask: number[][]
  /** Length of the current chunk (the longest prompt). */
  chunkLength: number
}

function int64Tensor(rows: number[][]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length])
}

export function prefillStep(dims: ModelDims, rows: BatchRow[], garbageSeed = 99): BatchStep {
  const past = Math.max(...rows.map((r) => r.prefix?.numVirtualTokens ?? 0))
  const chunk = Math.max(...rows.map((r) => r.tokens.length))
  const { numKvHeads: heads, headDim } = dims
  const garbage = mulberry32(garbageSeed)
  const feeds: Record<string, ort.Tensor> = {}
  for (let layer = 0; layer < dims.numLayers; layer++) {
    for (const kind of ['key', 'value'] as const) {
      const data = fillNormal(new Float32Array(rows.length * heads * past * headDim), garbage, 0, 10)
      rows.forEach((row, b) => {
        const prefix = row.prefix
        if (!prefix) return
        const p = prefix.numVirtualTokens
        const source = kind === 'key' ? prefix.keys[layer] : prefix.values[layer]
        for (let h = 0; h < heads; h++) {
          const from = h * p * headDim
          data.set(source.subarray(from, from + p * headDim), ((b * heads + h) * past + (past - p)) * headDim)
        }
      })
      feeds[`past_key_values.${layer}.${kind}`] = new ort.Tensor('float32', data, [rows.length, heads, past, headDim])
    }
  }
  const mask = rows.map((r) => {
    const p = r.prefix?.numVirtualTokens ?? 0
    const n = r.tokens.length
    return [...Array(past - p).fill(0), ...Array(p).fill(1), ...Array(chunk - n).fill(0), ...Array(n).fill(1)]
  })
  const leftPad = (values: number[]): number[] => [...Array(chunk - values.length).fill(0), ...values]
  feeds.input_ids = int64Tensor(rows.map((r) => leftPad(r.tokens)))
  feeds.position_ids = int64Tensor(rows.map((r) => leftPad(r.positions)))
  feeds.attention_mask = int64Tensor(mask)
  return { feeds, mask, chunkLength: chunk }
}

/** One decode step: the previous step's present.* as past, one new token per row. */
export function decodeStep(dims: ModelDims, previous: BatchStep, outputs: ort.InferenceSession.OnnxValueMapType, tokens: number[], positions: number[]): BatchStep {
  const feeds: Record<string, ort.Tensor> = {}
  for (let layer = 0; layer < dims.numLayers; layer++) {
    for (const kind of ['key', 'value']) feeds[`past_key_values.${layer}.${kind}`] = outputs[`present.${layer}.${kind}`] as ort.Tensor
  }
  const mask = previous.mask.map((m) => [...m, 1])
  feeds.input_ids = int64Tensor(tokens.map((t) => [t]))
  feeds.position_ids = int64Tensor(positions.map((p) => [p]))
  feeds.attention_mask = int64Tensor(mask)
  return { feeds, mask, chunkLength: 1 }
}

/** The logits of one row at one position of the chunk, [vocab]. */
export function logitsAt(logits: ort.Tensor, row: number, position: number): Float32Array {
  const [, seq, vocab] = logits.dims
  return (logits.data as Float32Array).subarray((row * seq + position) * vocab, (row * seq + position + 1) * vocab)
}
