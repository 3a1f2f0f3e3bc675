/**
 * The ways the engine can drive ONNX Runtime (ORT_BINDING), on the bench
 * workload's batch (prefill, then 63 decode steps) run as the engine runs it,
 * each a whole batch in turn, the order rotating each round; all must pick the
 * same tokens:
 *
 * - **onnxruntime-node, cache with room** (ORT_BINDING=node): the graph
 *   returns the new key/value columns (kv_step_outputs), appended in place
 *   into a cache with free columns fed masked, re-packed when full;
 * - **C API, cache with room**: the same graph, feeds and cache, each pass
 *   through the C API instead (src/engine/session/): the binding alone;
 * - **C API, present in place** (ORT_BINDING=auto, the default on the CPU):
 *   the graph returns the whole present, which IO binding writes into the
 *   engine's buffers as the next pass's past (present_in_place): no free
 *   columns, no appending, no re-pack as the rows grow;
 * - **C API, present in place, no logprob**: the same, with no row reporting
 *   its logprob (what the HTTP routes ask unless a request wants details or
 *   logprobs): the graph skips its greedy pick's log-softmax.
 *
 * Reports the mean time per decode step (the pass and the JavaScript around
 * it), as ratios to onnxruntime-node within each round.
 *
 *   TS_NODE_TRANSPILE_ONLY=1 node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/capi-passes.ts [--rounds 9]
 */
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { buildDecode, buildPrefill } from '../src/engine/batch/forward-feed.js'
import { adoptPresent, appendStep, prefillState, roomFor, withRoom, type KvShape } from '../src/engine/batch/kv-state.js'
import { CApiSession } from '../src/engine/session/capi-session.js'
import { ForwardRunner, type ForwardResult } from '../src/engine/forward-runner.js'
import { deriveModel } from '../src/engine/graph/derive-model.js'
import { withLoraTargets } from '../src/engine/graph/lora-rewrite.js'
import { MODEL_REWRITES } from '../src/engine/graph/rewrites.js'
import { loadModel } from '../src/engine/loaded-model.js'
import { readModelSpec } from '../src/engine/model-config.js'
import { fmt, median } from './stats.js'
import { benchPrefix, benchPrompts, ensureModel, WORKLOAD } from './workload.js'

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '9' }, 'cache-dir': { type: 'string', default: '.cache/bench' } } })
const log = (msg: string) => process.stderr.write(`[capi-passes] ${msg}\n`)
const { streams, promptTokens, newTokens, prefixTokens, threads } = WORKLOAD

const modelDir = await ensureModel(args['cache-dir']!, log)
const spec = await readModelSpec(modelDir)
const shape: KvShape = { numLayers: spec.numLayers, numKvHeads: spec.numKvHeads, headDim: spec.headDim }
const rewrites = withLoraTargets(MODEL_REWRITES, undefined, spec.modelType)
const load = (ortBinding: 'node' | 'capi') => loadModel(modelDir, { executionProvider: 'cpu', intraOpThreads: threads, ortBinding, rewrites })
const node = await load('node')
const capi = await load('capi')
// The C API on onnxruntime-node's graph (the new columns only), for the binding alone.
const { source } = await deriveModel(join(modelDir, 'model.onnx'), rewrites)
const capiOnStepGraph = CApiSession.create(source, { intraOpThreads: threads })

const runners = {
  node: new ForwardRunner(node.session, node.signature, shape, node.loraInputs),
  capiRoom: new ForwardRunner(capiOnStepGraph, node.signature, shape, node.loraInputs),
  capiInPlace: new ForwardRunner(capi.session, capi.signature, shape, capi.loraInputs),
}
if (!runners.capiInPlace.writesPresentInPlace) throw new Error('the C API runner does not write present in place')

const prefixes = Array.from({ length: streams }, (_, i) => benchPrefix(spec, prefixTokens, 100 + i))
const prompts = benchPrompts(streams, promptTokens, spec.vocabSize, spec.bosTokenId ?? 1)
const picks = (r: ForwardResult) => Array.from(r.greedy!.tokens, Number)

interface BatchRun {
  stepMs: number
  picked: string
}

/** One batch as the engine runs it with this runner: in place when it writes present so, else into a cache with room. */
async function batch({ runner, greedyLogprobs }: Variant): Promise<BatchRun> {
  const inPlace = runner.writesPresentInPlace
  const rows = prompts.map((promptIds, i) => ({ id: i + 1, promptIds, adapters: [{ kind: 'past_kv' as const, prefix: prefixes[i] }] }))
  const { feed, state } = buildPrefill(shape, rows)
  feed.logitsToKeep = 1
  feed.fetchLogits = false
  feed.greedyLogprobs = greedyLogprobs
  const first = await runner.run(feed)
  const total = feed.pastLen + feed.seqLen
  let kv = prefillState(shape, feed, state.rowIds, state.nextPosition, first.stepKeys, first.stepValues, inPlace ? 0 : roomFor(total))
  let tokens = picks(first)
  const picked = [tokens.join()]
  const started = performance.now()
  for (let step = 1; step < newTokens; step++) {
    if (!inPlace) kv = withRoom(shape, kv)
    const decode = buildDecode(kv, tokens)
    decode.fetchLogits = false
    decode.greedyLogprobs = greedyLogprobs
    decode.presentInPlace = inPlace
    const out = await runner.run(decode)
    if (out.present) adoptPresent(kv, out.present.keys, out.present.values)
    else appendStep(shape, kv, out.stepKeys, out.stepValues)
    tokens = picks(out)
    picked.push(tokens.join())
  }
  return { stepMs: (performance.now() - started) / (newTokens - 1), picked: picked.join(';') }
}

interface Variant {
  runner: ForwardRunner
  /** Whether some row reports its logprob (the graph then computes the greedy pick's). */
  greedyLogprobs: boolean
}

const variants: Record<string, Variant> = {
  'onnxruntime-node, cache with room': { runner: runners.node, greedyLogprobs: true },
  'C API, cache with room': { runner: runners.capiRoom, greedyLogprobs: true },
  'C API, present in place': { runner: runners.capiInPlace, greedyLogprobs: true },
  'C API, present in place, no logprob': { runner: runners.capiInPlace, greedyLogprobs: false },
}
const names = Object.keys(variants)
for (const name of names) await batch(variants[name]) // warm-up: first runs at each shape
const steps: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]))
const ratios: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]))
for (let round = 0; round < Number(args.rounds); round++) {
  const order = names.map((_, i) => names[(i + round) % names.length])
  const runs: Record<string, BatchRun> = {}
  for (const name of order) runs[name] = await batch(variants[name])
  for (const name of names) {
    if (runs[name].picked !== runs[names[0]].picked) throw new Error(`round ${round + 1}: ${name} picked other tokens than ${names[0]}`)
    steps[name].push(runs[name].stepMs)
    ratios[name].push(runs[name].stepMs / runs[names[0]].stepMs)
  }
  log(`round ${round + 1}: ${names.map((n) => `${n} ${fmt(runs[n].stepMs, 2)} ms`).join(', ')}`)
}
const lines = [
  `Decode steps of the bench batch (${streams} rows, ${newTokens - 1} steps per batch, ${Number(args.rounds)} rounds, onnxruntime ${CApiSession.libraryVersion()}, the same tokens picked by all):`,
  '',
  '| variant | ms per decode step, median | / onnxruntime-node, median of rounds | min | max |',
  '|---|---|---|---|---|',
  ...names.map((n) => `| ${n} | ${fmt(median(steps[n]), 2)} | ${fmt(median(ratios[n]), 3)} | ${fmt(Math.min(...ratios[n]), 3)} | ${fmt(Math.max(...ratios[n]), 3)} |`),
]
process.stdout.write(`${lines.join('\n')}\n`)
for (const session of [node.session, capi.session, capiOnStepGraph]) await session.release()
