/**
 * Where a decode pass writes the whole key/value cache when the session binds
 * `present` in place (graph/present-in-place.ts): two sets of per-layer
 * buffers, used in turn. A pass reads its past from one (or from a re-pack's
 * fresh buffers) and writes past + its new column into the other, which the
 * engine then keeps as the cache (kv-state.ts adoptPresent). Buffers grow with
 * headroom and never shrink, so a growing batch allocates only now and then.
 */

interface BufferSet {
  keys: Float32Array[]
  values: Float32Array[]
}

/** Allocated beyond what a pass needs when a set grows, so that the next few dozen steps fit. */
const HEADROOM = 1.5

export class PresentArena {
  private readonly sets: BufferSet[] = [
    { keys: [], values: [] },
    { keys: [], values: [] },
  ]

  constructor(private readonly numLayers: number) {}

  /**
   * Per layer, a view of `keyElements` / `valueElements` floats in the set
   * that does not hold `past` (the pass's first past key tensor).
   */
  views(past: Float32Array, keyElements: number, valueElements: number): BufferSet {
    const set = this.sets[0].keys[0]?.buffer === past.buffer ? this.sets[1] : this.sets[0]
    const grow = (buffers: Float32Array[], elements: number) => {
      for (let layer = 0; layer < this.numLayers; layer++) {
        if ((buffers[layer]?.length ?? 0) < elements) buffers[layer] = new Float32Array(Math.ceil(elements * HEADROOM))
      }
    }
    grow(set.keys, keyElements)
    grow(set.values, valueElements)
    return {
      keys: set.keys.map((b) => b.subarray(0, keyElements)),
      values: set.values.map((b) => b.subarray(0, valueElements)),
    }
  }
}
