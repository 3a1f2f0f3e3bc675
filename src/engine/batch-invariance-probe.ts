/**
 * Measures, at load, whether a row's logits depend on what shares its batch.
 * prefixd's batches left-pad prompts and leave holes in the past where rows'
 * prefixes differ in length; a graph that handles that exactly gives a row
 * the same logits alone and padded. One that does not (positions derived in a
 * way no rewrite recognized, dynamic quantization) is reported in /info and
 * the log instead of silently serving other tokens in a busy batch.
 */
import type { AdapterContribution } from '../domain/adapter-contribution.js'
import type { PrefixKV } from '../domain/prefix-kv.js'
import { buildPrefill } from './batch/forward-feed.js'
import type { KvShape } from './batch/kv-state.js'
import { fetchedLogits, type ForwardResult } from './forward-runner.js'

export interface ProbeRunner {
  run(feed: ReturnType<typeof buildPrefill>['feed']): Promise<ForwardResult>
}

/** Float noise between kernels of different batch sizes stays far below this; a wrong position does not. */
const TOLERANCE = 1e-3

/**
 * A fixed prefix of values in [-1, 1]. Not zeros: a zero key scores 0 against
 * any query, and a prefix's keys are what makes a query's absolute position
 * matter (rotary angles cancel between a row's own tokens, not against a
 * prefix, which is never rotated by the row's positions).
 */
function probePrefix(shape: KvShape, length: number): PrefixKV {
  const filled = (d: number) => Float32Array.from({ length: shape.numKvHeads * length * d }, (_, i) => (((i * 7919) % 13) - 6) / 6)
  return {
    numVirtualTokens: length,
    numLayers: shape.numLayers,
    numKvHeads: shape.numKvHeads,
    headDim: shape.headDim,
    keys: Array.from({ length: shape.numLayers }, () => filled(shape.headDim)),
    values: Array.from({ length: shape.numLayers }, () => filled(shape.valueHeadDim ?? shape.headDim)),
  }
}

/** Largest |a - b| relative to b's scale (never tighter than absolute). */
function maxRelativeDiff(a: Float32Array, b: Float32Array): number {
  let diff = 0
  let scale = 1
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(a[i] - b[i])
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d)
    scale = Math.max(scale, Math.abs(b[i]))
  }
  return diff / scale
}

/**
 * Runs a short prompt with a one-token prefix alone, then in a batch beside a
 * longer prompt with a longer prefix (so the short row's past has a hole and
 * its prompt is left-padded), and compares the short row's last logits.
 */
export async function probeBatchInvariance(runner: ProbeRunner, shape: KvShape, vocabSize: number, tokens: readonly number[]): Promise<boolean> {
  const short = tokens.slice(0, 3)
  const own: AdapterContribution[] = [{ kind: 'past_kv', prefix: probePrefix(shape, 1) }]
  const alone = await runner.run(buildPrefill(shape, [{ id: 0, promptIds: short, adapters: own }]).feed)
  const aloneLast = fetchedLogits(alone).slice((short.length - 1) * vocabSize, short.length * vocabSize)
  const { feed } = buildPrefill(shape, [
    { id: 0, promptIds: short, adapters: own },
    { id: 1, promptIds: tokens.slice(0, 7), adapters: [{ kind: 'past_kv', prefix: probePrefix(shape, 4) }] },
  ])
  const batched = await runner.run(feed)
  // Prompts are left-padded: the short row's last token is its last column.
  const batchedLast = fetchedLogits(batched).slice((feed.seqLen - 1) * vocabSize, feed.seqLen * vocabSize)
  return maxRelativeDiff(batchedLast, aloneLast) <= TOLERANCE
}
