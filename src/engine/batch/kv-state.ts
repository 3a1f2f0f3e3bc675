/**
 * The running batch's key/value cache, as the model wants it: per layer one key
 * and one value tensor [rows, kvHeads, capacity, headDim], plus a 0/1 mask
 * [rows, capacity + 1] saying which positions are real. Rows are request ids.
 *
 * The cache is allocated with room to grow: a decode pass feeds all `capacity`
 * columns as past (the unused ones masked out), the graph returns only the
 * columns it computed (graph/kv-step-outputs.ts), and `appendStep` writes them
 * into column `length` in place. So nothing of the size of the cache is
 * allocated, copied or converted per step; onnxruntime-node copies every output
 * it returns into a new zero-filled buffer, which for a returned `present` was
 * the whole cache each step (docs/performance.md). The mask's last column is
 * always 1: it is the token being decoded, and the mask is fed as it is.
 *
 * When rows join or leave, or the room runs out, `compact` re-packs every row
 * densely and right-aligned into fresh buffers with new room, which also drops
 * the holes that prefill padding and departed long rows leave behind.
 *
 * Where the session writes a decode pass's whole present into the engine's
 * buffers (graph/present-in-place.ts, batch/present-arena.ts), the cache keeps
 * no room: each pass's present, one column longer, becomes the cache
 * (`adoptPresent`), and rows are re-packed only when they join or leave.
 */
import type { ForwardFeed } from './forward-feed.js'

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
  /** Columns in use: the next decode pass writes its token's keys/values into column `length`. */
  length: number
  /** Columns allocated (>= length). */
  capacity: number
  keys: Float32Array[]
  values: Float32Array[]
  /** mask[r * (capacity + 1) + t] = 1n where row r has a real position t; the last column is 1n. The model's attention_mask. */
  mask: BigInt64Array
  /** Position id of each row's next token. */
  nextPosition: number[]
}

/** Free columns a re-packed cache gets: enough for 32 steps, or an eighth more for long ones (copies amortize, masked columns stay few). */
export function roomFor(length: number): number {
  return Math.max(32, length >> 3)
}

function allocate(shape: KvShape, rowIds: number[], length: number, capacity: number, nextPosition: number[]): KvState {
  const { numLayers, numKvHeads: H, headDim: D } = shape
  const Dv = shape.valueHeadDim ?? D
  const rows = rowIds.length
  const mask = new BigInt64Array(rows * (capacity + 1))
  for (let r = 0; r < rows; r++) mask[r * (capacity + 1) + capacity] = 1n
  return {
    rowIds,
    length,
    capacity,
    keys: Array.from({ length: numLayers }, () => new Float32Array(rows * H * capacity * D)),
    values: Array.from({ length: numLayers }, () => new Float32Array(rows * H * capacity * Dv)),
    mask,
    nextPosition,
  }
}

export function emptyKvState(shape: KvShape): KvState {
  return allocate(shape, [], 0, 0, [])
}

/** The runs [start, end) of real positions in row `row` of a mask `width` wide, among its first `length` columns. */
function realRuns(mask: BigInt64Array, row: number, width: number, length: number): Array<[number, number]> {
  const runs: Array<[number, number]> = []
  const base = row * width
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
 * order), each packed densely against column `length`, with room to grow.
 */
export function compact(shape: KvShape, sources: RowSource[], room: (length: number) => number = roomFor): KvState {
  const { numLayers, numKvHeads: H, headDim: D } = shape
  const Dv = shape.valueHeadDim ?? D
  const runsPerRow = sources.map((s) => realRuns(s.state.mask, s.row, s.state.capacity + 1, s.state.length))
  const realCounts = runsPerRow.map((runs) => runs.reduce((n, [a, b]) => n + b - a, 0))
  const length = Math.max(0, ...realCounts)
  const capacity = sources.length === 0 ? 0 : length + room(length)
  const out = allocate(
    shape,
    sources.map((s) => s.state.rowIds[s.row]),
    length,
    capacity,
    sources.map((s) => s.state.nextPosition[s.row]),
  )
  sources.forEach((src, r) => {
    const offset = length - realCounts[r]
    out.mask.fill(1n, r * (capacity + 1) + offset, r * (capacity + 1) + length)
    const T = src.state.capacity
    for (let layer = 0; layer < numLayers; layer++) {
      for (const [from, to, size] of [
        [src.state.keys[layer], out.keys[layer], D],
        [src.state.values[layer], out.values[layer], Dv],
      ] as const) {
        for (let h = 0; h < H; h++) {
          let dst = ((r * H + h) * capacity + offset) * size
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

/** The state itself when it has a free column for the next token, else the same rows re-packed with new room. */
export function withRoom(shape: KvShape, state: KvState): KvState {
  if (state.length < state.capacity) return state
  return compact(
    shape,
    state.rowIds.map((_, row) => ({ state, row })),
  )
}

/**
 * Copies block b's one column [width] of `from` into column `column` of block b
 * of `to` ([blocks, capacity, width]). A plain loop: a subarray per block (96
 * per layer at batch 16) made appending cost more than the copying itself.
 */
function copyColumn(from: Float32Array, to: Float32Array, blocks: number, capacity: number, column: number, width: number): void {
  for (let b = 0; b < blocks; b++) {
    const src = b * width
    const dst = (b * capacity + column) * width
    for (let i = 0; i < width; i++) to[dst + i] = from[src + i]
  }
}

/**
 * Writes a decode pass's new columns (per layer [rows, kvHeads, 1, headDim])
 * into column `length` of every row, in place, and marks it real.
 */
export function appendStep(shape: KvShape, state: KvState, stepKeys: Float32Array[], stepValues: Float32Array[]): void {
  const { numLayers, numKvHeads: H, headDim: D } = shape
  const Dv = shape.valueHeadDim ?? D
  const { capacity, length } = state
  if (length >= capacity) throw new RangeError(`no free column: length ${length}, capacity ${capacity}`)
  const rowsTimesHeads = state.rowIds.length * H
  for (let layer = 0; layer < numLayers; layer++) {
    copyColumn(stepKeys[layer], state.keys[layer], rowsTimesHeads, capacity, length, D)
    copyColumn(stepValues[layer], state.values[layer], rowsTimesHeads, capacity, length, Dv)
  }
  for (let r = 0; r < state.rowIds.length; r++) {
    state.mask[r * (capacity + 1) + length] = 1n
    state.nextPosition[r]++
  }
  state.length = length + 1
}

/**
 * Takes a decode pass's whole present (per layer [rows, kvHeads, capacity + 1,
 * headDim]: the past as fed plus the pass's column, written by the graph into
 * buffers of the engine's own; batch/present-arena.ts) as the cache, and marks
 * the new column real. For caches without free columns (capacity = length).
 */
export function adoptPresent(state: KvState, keys: Float32Array[], values: Float32Array[]): void {
  const rows = state.rowIds.length
  const width = state.capacity + 1
  const mask = new BigInt64Array(rows * (width + 1))
  for (let r = 0; r < rows; r++) {
    // The fed mask's last column (the decoded token, always 1) is now a real past position.
    mask.set(state.mask.subarray(r * width, (r + 1) * width), r * (width + 1))
    mask[r * (width + 1) + width] = 1n
    state.nextPosition[r]++
  }
  state.keys = keys
  state.values = values
  state.mask = mask
  state.length = width
  state.capacity = width
}

/**
 * The state a prefill pass leaves: its past (the prefix block) followed by the
 * columns it computed (per layer [rows, kvHeads, seqLen, headDim]), with
 * `room` free columns after them (default none: the re-pack that merges it
 * into the running batch adds the room).
 */
export function prefillState(
  shape: KvShape,
  feed: ForwardFeed,
  rowIds: number[],
  nextPosition: number[],
  stepKeys: Float32Array[],
  stepValues: Float32Array[],
  room = 0,
): KvState {
  const { numLayers, numKvHeads: H, headDim: D } = shape
  const Dv = shape.valueHeadDim ?? D
  const { batch, pastLen, seqLen } = feed
  const total = pastLen + seqLen
  const capacity = total + room
  const out = allocate(shape, rowIds, total, capacity, nextPosition)
  // A row's leading padding stays zero, as a re-pack leaves it: what the model
  // computed there (NaN, for some attention masks) must never reach a pass.
  const lead: number[] = []
  for (let r = 0; r < batch; r++) {
    out.mask.set(feed.attentionMask.subarray(r * total, (r + 1) * total), r * (capacity + 1))
    let t = 0
    while (t < total && feed.attentionMask[r * total + t] === 0n) t++
    lead.push(t)
  }
  for (let layer = 0; layer < numLayers; layer++) {
    for (const [past, step, to, size] of [
      [feed.pastKeys[layer], stepKeys[layer], out.keys[layer], D],
      [feed.pastValues[layer], stepValues[layer], out.values[layer], Dv],
    ] as const) {
      for (let rh = 0; rh < batch * H; rh++) {
        const skip = lead[Math.floor(rh / H)]
        const pastFrom = Math.min(skip, pastLen)
        const stepFrom = Math.max(0, skip - pastLen)
        to.set(past.subarray((rh * pastLen + pastFrom) * size, (rh + 1) * pastLen * size), (rh * capacity + pastFrom) * size)
        to.set(step.subarray((rh * seqLen + stepFrom) * size, (rh + 1) * seqLen * size), (rh * capacity + pastLen + stepFrom) * size)
      }
    }
  }
  return out
}

/**
 * Whether a prefill's layout is already what `compact` would make of it:
 * every row's real positions end at the last column with no gap (a prompt
 * shorter than the longest, after a prefix, leaves one), and some row fills
 * every column. Then the prefill's state can run as it is, room added.
 */
export function packedAsCompact(mask: BigInt64Array, rows: number, width: number): boolean {
  let full = false
  for (let r = 0; r < rows; r++) {
    const base = r * width
    let t = 0
    while (t < width && mask[base + t] === 0n) t++
    if (t === 0) full = true
    for (; t < width; t++) if (mask[base + t] !== 1n) return false
  }
  return full
}
