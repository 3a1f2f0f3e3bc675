/**
 * Partial selection over candidate token ids, so that top-k and top-p touch the
 * few tokens they keep instead of sorting a whole 32k vocabulary per token.
 */

/**
 * Rearranges ids[from, to) in place so that ids[from, from + count) hold the
 * `count` ids with the largest key[id] (in no particular order) and every id
 * after them has a key no larger. Expected O(to - from).
 *
 * Wirth's selection (Hoare partitioning around a value that is present in the
 * range, which keeps both scans in bounds without sentinels), with a
 * median-of-three pivot so already-sorted input stays linear. Keys must not be
 * NaN.
 */
export function selectLargest(ids: Int32Array, from: number, to: number, count: number, key: Float64Array): void {
  if (count <= 0 || count >= to - from) return
  const target = from + count - 1
  let lo = from
  let hi = to - 1
  while (lo < hi) {
    const pivot = medianOfThree(key[ids[lo]], key[ids[target]], key[ids[hi]])
    let i = lo
    let j = hi
    do {
      while (key[ids[i]] > pivot) i++
      while (pivot > key[ids[j]]) j--
      if (i <= j) {
        const tmp = ids[i]
        ids[i] = ids[j]
        ids[j] = tmp
        i++
        j--
      }
    } while (i <= j)
    if (j < target) lo = i
    if (target < i) hi = j
  }
}

function medianOfThree(a: number, b: number, c: number): number {
  if (a > b) {
    if (b > c) return b
    return a > c ? c : a
  }
  if (a > c) return a
  return b > c ? c : b
}

/** Sorts ids[from, to) by key descending, lower id first on ties (deterministic across engines). */
export function sortByKeyDescending(ids: Int32Array, from: number, to: number, key: Float64Array): void {
  ids.subarray(from, to).sort((a, b) => key[b] - key[a] || a - b)
}

/**
 * Writes to out[0, count) every index i < length whose key[i] is at least the
 * k-th largest key (so ties with the k-th are all kept, as transformers'
 * TopKLogitsWarper does) and returns count (>= k). One pass with a k-sized
 * min-heap finds the k-th largest: for token ids in no particular order by
 * score only ~k·ln(length/k) of them ever enter the heap, so this is close to
 * a plain scan for the small k clients use. Needs 1 <= k < length; `heap`
 * holds at least k entries. Keys must not be NaN.
 */
export function collectTopK(key: Float64Array, length: number, k: number, heap: Int32Array, out: Int32Array): number {
  for (let i = 0; i < k; i++) heapPush(heap, i, i, key)
  for (let i = k; i < length; i++) {
    if (key[i] > key[heap[0]]) {
      heap[0] = i
      siftDown(heap, k, key)
    }
  }
  const kth = key[heap[0]]
  let count = 0
  for (let i = 0; i < length; i++) if (key[i] >= kth) out[count++] = i
  return count
}

/** Adds `id` to the min-heap heap[0, size) ordered by key. */
function heapPush(heap: Int32Array, size: number, id: number, key: Float64Array): void {
  let child = size
  const value = key[id]
  while (child > 0) {
    const parent = (child - 1) >> 1
    if (key[heap[parent]] <= value) break
    heap[child] = heap[parent]
    child = parent
  }
  heap[child] = id
}

/** Restores the min-heap property after heap[0] was replaced. */
function siftDown(heap: Int32Array, size: number, key: Float64Array): void {
  const id = heap[0]
  const value = key[id]
  let parent = 0
  for (;;) {
    let child = 2 * parent + 1
    if (child >= size) break
    if (child + 1 < size && key[heap[child + 1]] < key[heap[child]]) child++
    if (key[heap[child]] >= value) break
    heap[parent] = heap[child]
    parent = child
  }
  heap[parent] = id
}
