/**
 * One forward pass's inputs, independent of ONNX Runtime: the prefill of newly
 * admitted rows, or one decode step of the running batch.
 */
import type { PrefixKV } from '../../domain/prefix-kv.js'
import type { KvShape, KvState } from './kv-state.js'

export interface ForwardFeed {
  batch: number
  seqLen: number
  pastLen: number
  inputIds: BigInt64Array
  positionIds: BigInt64Array
  /** [batch, pastLen + seqLen] */
  attentionMask: BigInt64Array
  pastKeys: Float32Array[]
  pastValues: Float32Array[]
}

export interface PrefillRow {
  id: number
  promptIds: readonly number[]
  /** The request's prefixes, concatenated in order (composition). */
  prefixes: readonly PrefixKV[]
}

/** Token id written into padding slots; the mask hides it, so any valid id works. */
const PAD_ID = 0n

function prefixLength(row: PrefillRow): number {
  return row.prefixes.reduce((n, p) => n + p.numVirtualTokens, 0)
}

/**
 * Prefill layout, as PEFT and the shared test data define it: the past holds
 * each row's prefix right-aligned in a block as long as the longest prefix
 * (mask 0 on unused slots); prompts are left-padded; a row's real tokens take
 * positions P, P+1, ... where P is its own prefix length.
 * Returns the feed and the state the outputs will describe once run.
 */
export function buildPrefill(
  shape: KvShape,
  rows: readonly PrefillRow[],
): { feed: ForwardFeed; state: Pick<KvState, 'rowIds' | 'length' | 'mask' | 'nextPosition'> } {
  const { numLayers, numKvHeads: H, headDim: D } = shape
  const b = rows.length
  const pastLen = Math.max(0, ...rows.map(prefixLength))
  const seqLen = Math.max(...rows.map((r) => r.promptIds.length))
  const total = pastLen + seqLen
  const inputIds = new BigInt64Array(b * seqLen).fill(PAD_ID)
  const positionIds = new BigInt64Array(b * seqLen)
  const attentionMask = new BigInt64Array(b * total)
  const pastKeys = Array.from({ length: numLayers }, () => new Float32Array(b * H * pastLen * D))
  const pastValues = Array.from({ length: numLayers }, () => new Float32Array(b * H * pastLen * D))
  const nextPosition: number[] = []

  rows.forEach((row, r) => {
    const P = prefixLength(row)
    const n = row.promptIds.length
    attentionMask.fill(1n, r * total + pastLen - P, r * total + pastLen)
    attentionMask.fill(1n, r * total + total - n, (r + 1) * total)
    let slot = pastLen - P
    for (const prefix of row.prefixes) {
      const p = prefix.numVirtualTokens
      for (let layer = 0; layer < numLayers; layer++) {
        for (let h = 0; h < H; h++) {
          const dst = ((r * H + h) * pastLen + slot) * D
          const src = h * p * D
          pastKeys[layer].set(prefix.keys[layer].subarray(src, src + p * D), dst)
          pastValues[layer].set(prefix.values[layer].subarray(src, src + p * D), dst)
        }
      }
      slot += p
    }
    for (let j = 0; j < n; j++) {
      const col = seqLen - n + j
      inputIds[r * seqLen + col] = BigInt(row.promptIds[j])
      positionIds[r * seqLen + col] = BigInt(P + j)
    }
    nextPosition.push(P + n)
  })
  return {
    feed: { batch: b, seqLen, pastLen, inputIds, positionIds, attentionMask, pastKeys, pastValues },
    state: { rowIds: rows.map((r) => r.id), length: total, mask: attentionMask, nextPosition },
  }
}

/**
 * One decode step: every running row feeds its last token at its next
 * position. The past is the state's whole capacity and the mask is the
 * state's own (its unused columns are 0, its last column is this token), so
 * the only arrays built per step are the batch's token and position ids.
 */
export function buildDecode(state: KvState, lastTokens: readonly number[]): ForwardFeed {
  const b = state.rowIds.length
  const inputIds = new BigInt64Array(b)
  const positionIds = new BigInt64Array(b)
  for (let r = 0; r < b; r++) {
    inputIds[r] = BigInt(lastTokens[r])
    positionIds[r] = BigInt(state.nextPosition[r])
  }
  return {
    batch: b,
    seqLen: 1,
    pastLen: state.capacity,
    inputIds,
    positionIds,
    attentionMask: state.mask,
    pastKeys: state.keys,
    pastValues: state.values,
  }
}
