/**
 * One forward pass's inputs, independent of ONNX Runtime: the prefill of newly
 * admitted rows, or one decode step of the running batch.
 */
import type { AdapterContribution } from '../../domain/adapter-contribution.js'
import type { LoraAdapter } from '../../domain/lora-weights.js'
import type { KvShape, KvState } from './kv-state.js'
import { rowLayout, type RowLayout } from './row-layout.js'

export interface ForwardFeed {
  batch: number
  seqLen: number
  pastLen: number
  /** VIRTUAL_TOKEN_ID where the row's input embedding comes from `inputsEmbeds`. */
  inputIds: BigInt64Array
  /**
   * [batch, seqLen, hidden]: the virtual tokens' input embeddings at their
   * slots (zeros elsewhere), or null when no row in the pass has any.
   */
  inputsEmbeds: Float32Array | null
  positionIds: BigInt64Array
  /** [batch, pastLen + seqLen] */
  attentionMask: BigInt64Array
  pastKeys: Float32Array[]
  pastValues: Float32Array[]
  /** Each row's LoRA adapter (null: none); absent means no row has one. */
  loraRows?: readonly (LoraAdapter | null)[]
  /**
   * How many of each row's last positions need logits (or the graph's greedy
   * pick): 1 picks the next token; seqLen also scores the prompt. A graph
   * without the logits_to_keep input returns every position regardless.
   */
  logitsToKeep: number
  /** Whether some row needs the logits themselves, not only the graph's greedy pick (sampling, penalties, top logprobs). */
  fetchLogits: boolean
  /**
   * Whether some row reports the logprob of the graph's greedy pick; false
   * lets the graph skip computing it (graph/greedy-pick.ts). Absent: wanted.
   */
  greedyLogprobs?: boolean
  /**
   * A decode pass of a cache without free columns, whose runner writes the
   * whole present in place (ForwardResult.present; batch/present-arena.ts).
   */
  presentInPlace?: boolean
}

export interface PrefillRow {
  id: number
  promptIds: readonly number[]
  /** The request's adapters' contributions, in the order it named them (composition). */
  adapters: readonly AdapterContribution[]
}

/** Token id written into padding slots; the mask hides it, so any valid id works. */
const PAD_ID = 0n
/**
 * Marks a slot whose input embedding is fed through `inputs_embeds` instead of
 * looked up: the derived graph selects on `input_ids < 0` (see
 * graph/inputs-embeds-rewrite.ts). Never a real token id.
 */
export const VIRTUAL_TOKEN_ID = -1n

/**
 * Prefill layout, as PEFT and the shared test data define it: the past holds
 * each row's prefixes right-aligned in a block as long as the longest (mask 0
 * on unused slots); each row's sequence is its virtual tokens (input
 * embeddings) then its prompt, left-padded; positions count from the row's
 * first past slot (see row-layout.ts).
 * Returns the feed and the state the outputs will describe once run.
 */
export function buildPrefill(
  shape: KvShape,
  rows: readonly PrefillRow[],
): { feed: ForwardFeed; state: Pick<KvState, 'rowIds' | 'length' | 'mask' | 'nextPosition'> } {
  const { numLayers, numKvHeads: H, headDim: D } = shape
  const Dv = shape.valueHeadDim ?? D
  const b = rows.length
  const layouts = rows.map((r) => rowLayout(r.adapters))
  const pastLen = Math.max(0, ...layouts.map((l) => l.pastLength))
  const seqLen = Math.max(...rows.map((r, i) => layouts[i].embedsLength + r.promptIds.length))
  const total = pastLen + seqLen
  const inputIds = new BigInt64Array(b * seqLen).fill(PAD_ID)
  const positionIds = new BigInt64Array(b * seqLen)
  const attentionMask = new BigInt64Array(b * total)
  const pastKeys = Array.from({ length: numLayers }, () => new Float32Array(b * H * pastLen * D))
  const pastValues = Array.from({ length: numLayers }, () => new Float32Array(b * H * pastLen * Dv))
  const inputsEmbeds = embedsBuffer(layouts, b, seqLen)
  const nextPosition: number[] = []

  rows.forEach((row, r) => {
    const layout = layouts[r]
    const P = layout.pastLength
    const n = layout.embedsLength + row.promptIds.length
    attentionMask.fill(1n, r * total + pastLen - P, r * total + pastLen)
    attentionMask.fill(1n, r * total + total - n, (r + 1) * total)
    let slot = pastLen - P
    for (const prefix of layout.past) {
      const p = prefix.numVirtualTokens
      for (let layer = 0; layer < numLayers; layer++) {
        for (let h = 0; h < H; h++) {
          const src = h * p
          pastKeys[layer].set(prefix.keys[layer].subarray(src * D, (src + p) * D), ((r * H + h) * pastLen + slot) * D)
          pastValues[layer].set(prefix.values[layer].subarray(src * Dv, (src + p) * Dv), ((r * H + h) * pastLen + slot) * Dv)
        }
      }
      slot += p
    }
    const first = seqLen - n
    let col = first
    for (const e of layout.embeds) {
      inputsEmbeds!.set(e.values, (r * seqLen + col) * e.hiddenSize)
      inputIds.fill(VIRTUAL_TOKEN_ID, r * seqLen + col, r * seqLen + col + e.numVirtualTokens)
      col += e.numVirtualTokens
    }
    for (let j = 0; j < row.promptIds.length; j++) inputIds[r * seqLen + col + j] = BigInt(row.promptIds[j])
    for (let j = 0; j < n; j++) positionIds[r * seqLen + first + j] = BigInt(P + j)
    nextPosition.push(P + n)
  })
  return {
    feed: { batch: b, seqLen, pastLen, inputIds, inputsEmbeds, positionIds, attentionMask, pastKeys, pastValues, logitsToKeep: seqLen, fetchLogits: true },
    state: { rowIds: rows.map((r) => r.id), length: total, mask: attentionMask, nextPosition },
  }
}

/** A zeroed [batch, seqLen, hidden] buffer when some row has virtual tokens; null otherwise (the common case pays nothing). */
function embedsBuffer(layouts: readonly RowLayout[], batch: number, seqLen: number): Float32Array | null {
  const hidden = layouts.find((l) => l.embeds.length > 0)?.embeds[0].hiddenSize
  return hidden === undefined ? null : new Float32Array(batch * seqLen * hidden)
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
    inputsEmbeds: null,
    positionIds,
    attentionMask: state.mask,
    pastKeys: state.keys,
    pastValues: state.values,
    logitsToKeep: 1,
    fetchLogits: true,
  }
}
