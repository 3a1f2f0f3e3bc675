/**
 * The running batch's key/value cache, as the model wants it: per layer one key
 * and one value tensor [rows, kvHeads, length, headDim], plus a 0/1 mask
 * [rows, length] saying which positions are real. Rows are request ids.
 *
 * While membership does not change, a decode step's `present` outputs become
 * the next step's past as they are (no copy in JavaScript), and the step's
 * attention mask becomes the next mask: the mask is kept in the int64 form the
 * model takes, so nothing is converted per step. When rows join or leave, `compact` re-packs every row densely
 * and right-aligned, which also drops the holes that prefill padding and
 * departed long rows leave behind.
 */
export interface KvShape {
  numLayers: number
  numKvHeads: number
  /** Head size of keys. */
  headDim: number
  /** Head size of values when it differs from keys' (multi-head latent attention); default headDim. */
  valueHeadDim?: number
}

export interface KvState {
  rowIds: number[]
  length: number
  keys: Float32Array[]
  values: Float32Array[]
  /** mask[r * length + t] = 1n where row r has a real position t: the model's attention_mask. */
  mask: BigInt64Array
  /** Position id of each row's next token. */
  nextPosition: number[]
}

export function emptyKvState(shape: KvShape): KvState {
  return {
    rowIds: [],
    length: 0,
    keys: Array.from({ length: shape.numLayers }, () => new Float32Array(0)),
    values: Array.from({ length: shape.numLayers }, () => new Float32Array(0)),
    mask: new BigInt64Array(0),
    nextPosition: [],
  }
}

/** The runs [start, end) of real positions in one row of a mask. */
function realRuns(mask: BigInt64Array, row: number, length: number): Array<[number, number]> {
  const runs: Array<[number, number]> = []
  const base = row * length
  let t = 0
  while (t < length) {
    while (t < length && mask[base + t] === 0n) t++
    const start = t
    while (t < length && mask[base + t] === 1n) t++
    if (t > start) runs.push([start, t])
  }
  return runs
}

interface RowSource {
  state: KvState
  row: number
}

/**
 * Builds a new state holding the given rows (from one or more states, in that
 * order), each packed densely against the right edge.
 */
export function compact(shape: KvShape, sources: RowSource[]): KvState {
  const { numLayers, numKvHeads: H, headDim: D } = shape
  const Dv = shape.valueHeadDim ?? D
  const runsPerRow = sources.map((s) => realRuns(s.state.mask, s.row, s.state.length))
  const realCounts = runsPerRow.map((runs) => runs.reduce((n, [a, b]) => n + b - a, 0))
  const length = Math.max(0, ...realCounts)
  const rows = sources.length
  const out: KvState = {
    rowIds: sources.map((s) => s.state.rowIds[s.row]),
    length,
    keys: Array.from({ length: numLayers }, () => new Float32Array(rows * H * length * D)),
    values: Array.from({ length: numLayers }, () => new Float32Array(rows * H * length * Dv)),
    mask: new BigInt64Array(rows * length),
    nextPosition: sources.map((s) => s.state.nextPosition[s.row]),
  }
  sources.forEach((src, r) => {
    const offset = length - realCounts[r]
    out.mask.fill(1n, r * length + offset, (r + 1) * length)
    const T = src.state.length
    for (let layer = 0; layer < numLayers; layer++) {
      for (const [from, to, size] of [
        [src.state.keys[layer], out.keys[layer], D],
        [src.state.values[layer], out.values[layer], Dv],
      ] as const) {
        for (let h = 0; h < H; h++) {
          let dst = ((r * H + h) * length + offset) * size
          const srcBase = (src.row * H + h) * T
          for (const [a, b] of runsPerRow[r]) {
            to.set(from.subarray((srcBase + a) * size, (srcBase + b) * size), dst)
            dst += (b - a) * size
          }
        }
      }
    }
  })
  return out
}

/**
 * Takes a decode step's outputs as the new state: its present tensors are the
 * new past, and its attention mask (the old mask plus a column of ones, see
 * buildDecode) is the new mask.
 */
export function advance(state: KvState, presentKeys: Float32Array[], presentValues: Float32Array[], stepMask: BigInt64Array): KvState {
  return {
    rowIds: state.rowIds,
    length: state.length + 1,
    keys: presentKeys,
    values: presentValues,
    mask: stepMask,
    nextPosition: state.nextPosition.map((p) => p + 1),
  }
}
