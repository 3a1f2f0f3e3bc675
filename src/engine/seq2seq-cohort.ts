/**
 * The running rows of an encoder-decoder model, in cohorts. optimum's
 * with-past decoder has no decoder attention mask and derives positions from
 * the past length, so one call can only hold rows whose self-attention past
 * (prefix + decoder tokens so far) has the SAME length: a cohort is such a set
 * of rows, stored batched the way the decoder takes them. While a cohort's
 * membership is stable, a step's `present` outputs are its next past as they
 * are (no copy); cohorts whose past lengths meet are merged, and rows that
 * leave are dropped by re-gathering the rest.
 *
 * Cross-attention keys/values (from the encoder output, fixed for a request's
 * life) are right-padded to the cohort's longest source, with encoder mask 0 on
 * the padding: a masked key gets zero attention weight, so padding is exact.
 * Pure: no ONNX Runtime.
 */
import type { PrefixKV } from '../domain/prefix-kv.js'

export interface Seq2seqShape {
  numLayers: number
  numHeads: number
  headDim: number
  hiddenSize: number
}

export interface Cohort {
  rowIds: number[]
  /** Self-attention past length shared by every row. */
  pastLen: number
  /** Per layer [rows, heads, pastLen, headDim]. */
  selfKeys: Float32Array[]
  selfValues: Float32Array[]
  /** Per layer [rows, heads, sourceLen, headDim]. */
  crossKeys: Float32Array[]
  crossValues: Float32Array[]
  /** [rows, sourceLen, hidden]: the with-past graphs still take it as an input. */
  encoderHidden: Float32Array
  /** [rows, sourceLen], 1 on real source tokens. */
  encoderMask: BigInt64Array
  sourceLen: number
}

export interface RowRef {
  cohort: Cohort
  row: number
}

/** A row's self-attention past, per layer [heads, len, headDim]. */
export interface RowPast {
  keys: Float32Array[]
  values: Float32Array[]
}

/** The row's own block of a [rows, ...] tensor: rows are contiguous, so no copy. */
function rowBlock(data: Float32Array, row: number, width: number): Float32Array {
  return data.subarray(row * width, (row + 1) * width)
}

/** A row's past as its cohort holds it. */
export function pastOf(ref: RowRef, shape: Seq2seqShape): RowPast {
  const width = shape.numHeads * ref.cohort.pastLen * shape.headDim
  return {
    keys: ref.cohort.selfKeys.map((k) => rowBlock(k, ref.row, width)),
    values: ref.cohort.selfValues.map((v) => rowBlock(v, ref.row, width)),
  }
}

/** A request's prefixes, concatenated in order, as its starting self-attention past. */
export function prefixPast(prefixes: readonly PrefixKV[], shape: Seq2seqShape): RowPast {
  const { numLayers, numHeads: H, headDim: D } = shape
  const P = prefixes.reduce((n, p) => n + p.numVirtualTokens, 0)
  const build = (pick: (p: PrefixKV) => Float32Array[]) =>
    Array.from({ length: numLayers }, (_, layer) => {
      const out = new Float32Array(H * P * D)
      let slot = 0
      for (const prefix of prefixes) {
        const p = prefix.numVirtualTokens
        const src = pick(prefix)[layer]
        for (let h = 0; h < H; h++) out.set(src.subarray(h * p * D, (h + 1) * p * D), (h * P + slot) * D)
        slot += p
      }
      return out
    })
  return { keys: build((p) => p.keys), values: build((p) => p.values) }
}

/** Copies [inner]-sized runs of one row from a [rows, outer, len, inner] tensor into a longer, zero-padded one. */
function copyPadded<T extends Float32Array | BigInt64Array>(
  from: T,
  to: T,
  fromRow: number,
  toRow: number,
  outer: number,
  len: number,
  paddedLen: number,
  inner: number,
): void {
  for (let o = 0; o < outer; o++) {
    const src = ((fromRow * outer + o) * len) * inner
    ;(to as Float32Array).set((from as Float32Array).subarray(src, src + len * inner), ((toRow * outer + o) * paddedLen) * inner)
  }
}

/**
 * A new cohort of the given rows, in order, each with the given past (all of
 * the same length). Sources are right-padded to the longest among them.
 */
export function gather(shape: Seq2seqShape, refs: readonly RowRef[], pasts: readonly RowPast[]): Cohort {
  const { numLayers, numHeads: H, headDim: D, hiddenSize } = shape
  const B = refs.length
  const pastLen = B === 0 ? 0 : pasts[0].keys[0].length / (H * D)
  const S = Math.max(0, ...refs.map((r) => r.cohort.sourceLen))
  const layers = (width: number) => Array.from({ length: numLayers }, () => new Float32Array(B * width))
  const out: Cohort = {
    rowIds: refs.map((r) => r.cohort.rowIds[r.row]),
    pastLen,
    selfKeys: layers(H * pastLen * D),
    selfValues: layers(H * pastLen * D),
    crossKeys: layers(H * S * D),
    crossValues: layers(H * S * D),
    encoderHidden: new Float32Array(B * S * hiddenSize),
    encoderMask: new BigInt64Array(B * S),
    sourceLen: S,
  }
  refs.forEach((ref, r) => {
    const src = ref.cohort
    for (let layer = 0; layer < numLayers; layer++) {
      out.selfKeys[layer].set(pasts[r].keys[layer], r * H * pastLen * D)
      out.selfValues[layer].set(pasts[r].values[layer], r * H * pastLen * D)
      copyPadded(src.crossKeys[layer], out.crossKeys[layer], ref.row, r, H, src.sourceLen, S, D)
      copyPadded(src.crossValues[layer], out.crossValues[layer], ref.row, r, H, src.sourceLen, S, D)
    }
    copyPadded(src.encoderHidden, out.encoderHidden, ref.row, r, 1, src.sourceLen, S, hiddenSize)
    copyPadded(src.encoderMask, out.encoderMask, ref.row, r, 1, src.sourceLen, S, 1)
  })
  return out
}

/** The same rows after one decoder step: its present outputs are the new past. */
export function advance(cohort: Cohort, presentKeys: Float32Array[], presentValues: Float32Array[]): Cohort {
  return { ...cohort, pastLen: cohort.pastLen + 1, selfKeys: presentKeys, selfValues: presentValues }
}

/** Keeps the rows `keep` says to keep; a cohort that keeps every row is returned as is. */
export function retain(shape: Seq2seqShape, cohort: Cohort, keep: (id: number) => boolean): Cohort | null {
  const refs = cohort.rowIds.flatMap((id, row) => (keep(id) ? [{ cohort, row }] : []))
  if (refs.length === cohort.rowIds.length) return cohort
  if (refs.length === 0) return null
  return gather(shape, refs, refs.map((ref) => pastOf(ref, shape)))
}

/** Cohorts whose past lengths are equal become one (they can share every later call). */
export function mergeByPastLength(shape: Seq2seqShape, cohorts: readonly Cohort[]): Cohort[] {
  const byLength = new Map<number, Cohort[]>()
  for (const c of cohorts) byLength.set(c.pastLen, [...(byLength.get(c.pastLen) ?? []), c])
  return [...byLength.values()].map((group) => {
    if (group.length === 1) return group[0]
    const refs = group.flatMap((cohort) => cohort.rowIds.map((_, row) => ({ cohort, row })))
    return gather(shape, refs, refs.map((ref) => pastOf(ref, shape)))
  })
}
