/**
 * The graph's greedy pick in its two forms (src/engine/graph/greedy-pick.ts),
 * on the bench workload: the server's graph with the chunked
 * argmax against the same graph with one ArgMax over the whole vocabulary.
 * The batch runs as the engine runs it (ForwardRunner, the cache with room,
 * the new columns appended in place, no logits fetched), on one session then
 * the other, the order flipping each round; both must pick the same tokens.
 *
 *   TS_NODE_TRANSPILE_ONLY=1 node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/pick-passes.ts [--rounds 9]
 */
import { parseArgs } from 'node:util'
import { buildDecode, buildPrefill } from '../src/engine/batch/forward-feed.js'
import { appendStep, prefillState, roomFor, withRoom, type KvShape } from '../src/engine/batch/kv-state.js'
import { ForwardRunner, type ForwardResult } from '../src/engine/forward-runner.js'
import { greedyPick, greedyPickRewrite } from '../src/engine/graph/greedy-pick.js'
import { withLoraTargets } from '../src/engine/graph/lora-rewrite.js'
import { MODEL_REWRITES } from '../src/engine/graph/rewrites.js'
import { loadModel } from '../src/engine/loaded-model.js'
import { readModelSpec } from '../src/engine/model-config.js'
import { fmt, median } from './stats.js'
import { benchPrefix, benchPrompts, ensureModel, WORKLOAD } from './workload.js'

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '9' }, 'cache-dir': { type: 'string', default: '.cache/bench' } } })
const log = (msg: string) => process.stderr.write(`[pick-passes] ${msg}\n`)
const { streams, promptTokens, newTokens, prefixTokens, threads } = WORKLOAD

const modelDir = await ensureModel(args['cache-dir']!, log)
const spec = await readModelSpec(modelDir)
const shape: KvShape = { numLayers: spec.numLayers, numKvHeads: spec.numKvHeads, headDim: spec.headDim }
const serverRewrites = withLoraTargets(MODEL_REWRITES, undefined, spec.modelType)
const runnerWith = async (rewrites: typeof serverRewrites) => {
  // onnxruntime-node: the cache with room, as it runs the graph with kv_step_outputs (the C API writes present in place instead).
  const model = await loadModel(modelDir, { executionProvider: 'cpu', intraOpThreads: threads, ortBinding: 'node', rewrites })
  return new ForwardRunner(model.session, model.signature, shape, model.loraInputs)
}
const chunked = await runnerWith(serverRewrites)
const whole = await runnerWith(serverRewrites.map((r) => (r === greedyPick ? greedyPickRewrite({ chunked: false }) : r)))
const prefixes = Array.from({ length: streams }, (_, i) => benchPrefix(spec, prefixTokens, 100 + i))
const prompts = benchPrompts(streams, promptTokens, spec.vocabSize, spec.bosTokenId ?? 1)

const picks = (r: ForwardResult) => Array.from(r.greedy!.tokens, Number)

/**
 * One batch through one runner, as the engine runs it: the decode passes'
 * times and every pass's picks. Not pass by pass across the two sessions:
 * each session's idle ONNX Runtime threads spin for a while after its pass,
 * and took the cores from the other's (passes ran at twice their time).
 */
async function batch(runner: ForwardRunner): Promise<{ passMs: number[]; picked: string }> {
  const rows = prompts.map((promptIds, i) => ({ id: i + 1, promptIds, adapters: [{ kind: 'past_kv' as const, prefix: prefixes[i] }] }))
  const { feed, state } = buildPrefill(shape, rows)
  feed.logitsToKeep = 1
  feed.fetchLogits = false
  const first = await runner.run(feed)
  let kv = prefillState(shape, feed, state.rowIds, state.nextPosition, first.stepKeys, first.stepValues, roomFor(feed.pastLen + feed.seqLen))
  let tokens = picks(first)
  const picked = [tokens.join()]
  const passMs: number[] = []
  for (let step = 1; step < newTokens; step++) {
    kv = withRoom(shape, kv)
    const decode = buildDecode(kv, tokens)
    decode.fetchLogits = false
    const t0 = performance.now()
    const out = await runner.run(decode)
    passMs.push(performance.now() - t0)
    appendStep(shape, kv, out.stepKeys, out.stepValues)
    tokens = picks(out)
    picked.push(tokens.join())
  }
  return { passMs, picked: picked.join(';') }
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
await batch(chunked) // warm-up: first runs at each shape
await batch(whole)
const ratios: number[] = []
for (let i = 0; i < Number(args.rounds); i++) {
  // Back to back, the order flipping each round.
  const [a, b] = i % 2 === 0 ? [await batch(chunked), await batch(whole)] : await batch(whole).then(async (w) => [await batch(chunked), w] as const)
  if (a.picked !== b.picked) throw new Error(`round ${i + 1}: the two forms picked different tokens`)
  ratios.push(mean(a.passMs) / mean(b.passMs))
  log(`round ${i + 1}: decode pass ${fmt(mean(a.passMs), 2)} ms chunked, ${fmt(mean(b.passMs), 2)} ms one ArgMax`)
}
process.stdout.write(
  `Decode passes of the engine's graph (${streams} rows, ${newTokens - 1} passes per batch, ${ratios.length} rounds, the same tokens picked): mean pass time with the chunked argmax / with one ArgMax, per round: median ${fmt(median(ratios), 3)}, min ${fmt(Math.min(...ratios), 3)}, max ${fmt(Math.max(...ratios), 3)}.\n`,
)
