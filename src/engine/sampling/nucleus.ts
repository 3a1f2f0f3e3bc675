/**
 * Top-p (nucleus) filtering without sorting the vocabulary: finds how many of
 * the heaviest candidates make up the nucleus and moves them to the front.
 */
import { selectLargest, sortByKeyDescending } from './top-selection.js'

/** Resolution of the top-p bucketing: candidates within 1/8 nat of each other share a bucket. */
const BUCKETS_PER_NAT = 8
/** Buckets cover 64 nats below the top; lighter tokens (< 1.6e-28 of it) share the last one. */
const NUCLEUS_BUCKETS = 64 * BUCKETS_PER_NAT
/** Below this many candidates around the nucleus edge, sorting beats more partitioning. */
const NUCLEUS_SORT_BELOW = 32

export class NucleusFinder {
  /** Probability mass per distance-below-the-top bucket. */
  private readonly bucketMass = new Float64Array(NUCLEUS_BUCKETS)

  /**
   * Works in place on the sampler's buffers: `ids` candidate token ids,
   * `weights` their unnormalized probabilities and `scores` their logits, both
   * indexed by token id.
   */
  constructor(
    private readonly ids: Int32Array,
    private readonly weights: Float64Array,
    private readonly scores: Float64Array,
    private readonly topP: number,
    private readonly invTemperature: number,
  ) {}

  /**
   * Moves the heaviest candidates of ids[0, count) to the front and returns how
   * many form the nucleus: the smallest set of heaviest tokens whose weight
   * reaches topP · total (at least one). `total` is the weight of all
   * candidates and `max` the largest score. Nothing is sorted wholesale, which
   * matters when the nucleus holds thousands of tokens (a flat distribution at
   * high temperature):
   * 1. one pass buckets candidates by how far below the top they are, in
   *    1/8-nat steps (no log needed: that distance is (max - score) / T), and
   *    finds the bucket where the cumulative mass crosses the target;
   * 2. one pass partitions ids: heavier buckets (all in), the crossing bucket;
   * 3. inside the crossing bucket, halving with partial selection, then a sort
   *    of the last few. Expected O(count) overall.
   */
  size(count: number, total: number, max: number): number {
    const { ids, weights, scores, bucketMass } = this
    const target = this.topP * total
    const bucketScale = BUCKETS_PER_NAT * this.invTemperature
    const lastBucket = bucketMass.length - 1
    const bucketOf = (id: number) => Math.min(lastBucket, Math.floor((max - scores[id]) * bucketScale))

    bucketMass.fill(0)
    for (let j = 0; j < count; j++) {
      const id = ids[j]
      bucketMass[bucketOf(id)] += weights[id]
    }
    let crossing = 0
    let massBefore = 0
    while (crossing < lastBucket && massBefore + bucketMass[crossing] < target) massBefore += bucketMass[crossing++]

    // Three-way partition: [0, lo) the heavier buckets, all in the nucleus; [lo, hi) the crossing one.
    let lo = 0
    let hi = count
    for (let j = 0; j < hi; ) {
      const bucket = bucketOf(ids[j])
      if (bucket < crossing) swap(ids, lo++, j++)
      else if (bucket > crossing) swap(ids, j, --hi)
      else j++
    }
    if (lo === hi) return lo // rounding left the target unreached: everything above is in

    // The nucleus ends in (lo, hi].
    while (hi - lo > NUCLEUS_SORT_BELOW) {
      const mid = lo + ((hi - lo) >>> 1)
      selectLargest(ids, lo, hi, mid - lo, weights)
      const mass = sumWeights(ids, lo, mid, weights)
      if (massBefore + mass >= target) {
        hi = mid
      } else {
        massBefore += mass
        lo = mid
      }
    }
    sortByKeyDescending(ids, lo, hi, weights)
    let cumulative = massBefore
    for (let j = lo; j < hi; j++) {
      cumulative += weights[ids[j]]
      if (cumulative >= target) return j + 1
    }
    return hi
  }
}

function swap(ids: Int32Array, a: number, b: number): void {
  const tmp = ids[a]
  ids[a] = ids[b]
  ids[b] = tmp
}

function sumWeights(ids: Int32Array, from: number, to: number, weights: Float64Array): number {
  let sum = 0
  for (let j = from; j < to; j++) sum += weights[ids[j]]
  return sum
}
