/**
 * The cost of LoRA rows, on the DESIGN.md workload's 15m Llama shape (16 rows
 * of 16 prompt tokens, 64 new tokens, 2 threads), exported with one MatMul per
 * projection as optimum does (LoRA targets q_proj, v_proj, ... by name):
 *
 *   TS_NODE_TRANSPILE_ONLY=1 node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/lora-run.ts [--rounds 5]
 *
 * Variants, all through the engine's step loop in this one thread, interleaved
 * in rounds; each ratio is taken within a round, then the median over rounds:
 * - base 16, original graph: the model file as is (what main serves);
 * - base 16, LoRA graph (all projections / q,v): the derived graph with every
 *   projection or only q,v taking LoRA, no row with a LoRA (rank 0);
 * - LoRA q,v r8 ×16: 16 distinct rank-8 LoRAs on q_proj and v_proj, one per
 *   row, on the q,v graph (LORA_TARGET_MODULES=peft, the default for Llama);
 * - LoRA all r8 ×16: 16 distinct rank-8 LoRAs on all seven linear modules, on
 *   the all-projections graph (LORA_TARGET_MODULES=all).
 * And, because this shared machine's load drifts within a minute, the base
 * path's cost again pass by pass (paired-passes.ts): each forward pass of a
 * no-LoRA batch on the exported graph and on the derived one back to back,
 * the median of the per-pass time ratios.
 * Also the memory one cached LoRA holds (its A and B in float32).
 */
import * as ort from 'onnxruntime-node'
import { access } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { deriveModel } from '../src/engine/graph/derive-model.js'
import type { GraphRewrite } from '../src/engine/graph/graph-rewrite.js'
import { loraRewrite, loraRewriteFor } from '../src/engine/graph/lora-rewrite.js'
import { findModelFile } from '../src/engine/onnx-session.js'
import { generateModel } from '../src/models/generate/index.js'
import { loraAdapterBytes } from '../src/prefixes/lora-adapter.js'
import { seededLora } from '../test/helpers/lora-fixtures.js'
import type { Throughput } from './engine-batch.js'
import { LoopBench, type LoopRow } from './lora-loop.js'
import { machineInfo } from './machine.js'
import { noLoraFeeds } from './no-lora-feeds.js'
import { pairedPasses } from './paired-passes.js'
import { alternate, fmt, median, quantile, spread } from './stats.js'
import { benchPrompts, WORKLOAD } from './workload.js'

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    'cache-dir': { type: 'string', default: '.cache/bench' },
  },
})
const rounds = Number(args.rounds)
const log = (msg: string) => process.stderr.write(`[lora-bench] ${msg}\n`)
const { streams, promptTokens, newTokens, threads } = WORKLOAD
const RANK = 8

async function ensureSeparateModel(cacheDir: string): Promise<string> {
  const dir = resolve(join(cacheDir, 'llama-15m-seed0-separate'))
  try {
    await access(join(dir, 'model.onnx'))
  } catch {
    log(`generating the 15m llama (one MatMul per projection) into ${dir}`)
    await generateModel({ arch: 'llama', size: '15m', out: dir, seed: 0, layout: { separateProjections: true } })
  }
  return dir
}

const modelDir = await ensureSeparateModel(args['cache-dir']!)
const original = await LoopBench.create(modelDir, threads, streams, [])
const derived = await LoopBench.create(modelDir, threads, streams, [loraRewrite])
const qvOnly = await LoopBench.create(modelDir, threads, streams, [loraRewriteFor((m) => m === 'q_proj' || m === 'v_proj')])
const { spec, loraInputs } = derived.model
if (original.model.loraInputs.length !== 0 || loraInputs.length === 0) throw new Error('the two graphs are not original and derived')
const prompts = benchPrompts(streams, promptTokens, spec.vocabSize, spec.bosTokenId ?? 1)
const qv = (m: string) => m === 'q_proj' || m === 'v_proj'
const qvLoras = prompts.map((_, i) => seededLora(loraInputs, qv, RANK, 500 + i))
const allLoras = prompts.map((_, i) => seededLora(loraInputs, () => true, RANK, 600 + i))
const rows = (loras: readonly (ReturnType<typeof seededLora> | null)[]): LoopRow[] => prompts.map((promptIds, i) => ({ promptIds, lora: loras[i] ?? null }))

const variants: Array<{ name: string; run: () => Promise<Throughput> }> = [
  { name: 'base 16, original graph', run: () => original.run(rows([]), newTokens) },
  { name: 'base 16, LoRA graph (all projections)', run: () => derived.run(rows([]), newTokens) },
  { name: 'base 16, LoRA graph (q,v: the default)', run: () => qvOnly.run(rows([]), newTokens) },
  { name: 'LoRA q,v r8 ×16', run: () => qvOnly.run(rows(qvLoras), newTokens) },
  { name: 'LoRA all r8 ×16', run: () => derived.run(rows(allLoras), newTokens) },
]
const RATIOS = [
  { name: '16 distinct LoRAs (q,v r8) / 16 base rows, q,v graph', num: 'LoRA q,v r8 ×16', den: 'base 16, LoRA graph (q,v: the default)', target: 0.85 },
  { name: '16 distinct LoRAs (all modules r8) / 16 base rows, all-projections graph', num: 'LoRA all r8 ×16', den: 'base 16, LoRA graph (all projections)' },
  { name: 'base rows: LoRA graph (all projections) / original graph', num: 'base 16, LoRA graph (all projections)', den: 'base 16, original graph', target: 0.98 },
  { name: 'base rows: LoRA graph (q,v, the default) / original graph', num: 'base 16, LoRA graph (q,v: the default)', den: 'base 16, original graph', target: 0.98 },
  { name: '16 distinct LoRAs (q,v r8) / base rows on the original graph', num: 'LoRA q,v r8 ×16', den: 'base 16, original graph' },
]

const modelFile = await findModelFile(modelDir)
const sessionOptions: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], graphOptimizationLevel: 'all', interOpNumThreads: 1, intraOpNumThreads: threads }
async function derivedSession(rewrite: GraphRewrite): Promise<ort.InferenceSession> {
  const derived = await deriveModel(modelFile, [rewrite])
  if (typeof derived.source === 'string') throw new Error('the LoRA rewrite did not apply to the bench model')
  return ort.InferenceSession.create(derived.source, sessionOptions)
}
const exportedSession = await ort.InferenceSession.create(modelFile, sessionOptions)
const paired = [
  { name: 'all projections', session: await derivedSession(loraRewrite), ratios: [] as number[] },
  { name: 'q,v only', session: await derivedSession(loraRewriteFor((m) => m === 'q_proj' || m === 'v_proj')), ratios: [] as number[] },
]
const kv = { heads: spec.numKvHeads, headDim: spec.headDim }

const measured: Array<Record<string, Throughput>> = []
for (let round = -1; round < rounds; round++) {
  const perRound: Record<string, Throughput> = {}
  for (const v of alternate(variants, Math.max(0, round))) perRound[v.name] = await v.run()
  if (round >= 0) measured.push(perRound)
  for (const p of paired) {
    const timing = await pairedPasses(exportedSession, p.session, prompts, newTokens, spec.numLayers, kv, noLoraFeeds(p.session, streams))
    if (round >= 0) p.ratios.push(...timing.ratios)
  }
  log(`${round < 0 ? 'warm-up' : `round ${round + 1}/${rounds}`}: ${variants.map((v) => `${v.name} ${fmt(perRound[v.name].tokens / perRound[v.name].seconds)}`).join(', ')} tok/s`)
}

const rate = (t: Throughput) => t.tokens / t.seconds
const machine = machineInfo()
const lines = [
  `LoRA rows, 15m Llama (hidden ${spec.hiddenSize}, ${spec.numLayers} layers, separate projections), ${streams} rows × ${promptTokens} prompt + ${newTokens} new tokens, ${threads} threads, ${rounds} rounds`,
  `machine: ${machine.nproc} cores, ${machine.cpuModel}, load ${machine.loadAverage}, node ${machine.node}, onnxruntime ${machine.onnxruntime}`,
  '',
  '| variant | tokens/s (median) | min | max |',
  '|---|---|---|---|',
  ...variants.map((v) => {
    const s = spread(measured.map((r) => rate(r[v.name])))
    return `| ${v.name} | ${fmt(s.median)} | ${fmt(s.min)} | ${fmt(s.max)} |`
  }),
  '',
  '| ratio (per round, median) | median | min | max | target |',
  '|---|---|---|---|---|',
  ...RATIOS.map((q) => {
    const s = spread(measured.map((r) => rate(r[q.num]) / rate(r[q.den])))
    return `| ${q.name} | ${fmt(s.median, 3)} | ${fmt(s.min, 3)} | ${fmt(s.max, 3)} | ${q.target === undefined ? '' : `≥ ${q.target}`} |`
  }),
  '',
  ...paired.map(
    (p) =>
      `Paired passes, no LoRA row, derived graph (${p.name}) / exported graph: ${p.ratios.length} forward passes, per-pass time ratio median ${fmt(median(p.ratios), 3)}, interquartile range ${fmt(quantile(p.ratios, 0.25), 3)} to ${fmt(quantile(p.ratios, 0.75), 3)}.`,
  ),
  '',
  `memory per cached LoRA (A and B, float32): q,v r8 ${fmt(loraAdapterBytes(qvLoras[0]) / 1024, 1)} KiB; all modules r8 ${fmt(loraAdapterBytes(allLoras[0]) / 1024, 1)} KiB`,
  '',
]
process.stdout.write(lines.join('\n'))
