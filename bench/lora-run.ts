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
 * - base 16, LoRA graph: the derived graph, no row with a LoRA (rank 0);
 * - base 16, q,v-only graph: derived with LORA_TARGET_MODULES=q_proj,v_proj;
 * - LoRA q,v r8 ×16: 16 distinct rank-8 LoRAs on q_proj and v_proj, one per row;
 * - LoRA all r8 ×16: 16 distinct rank-8 LoRAs on all seven linear modules.
 * Also the memory one cached LoRA holds (its A and B in float32).
 */
import { access } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { loraRewriteFor } from '../src/engine/graph/lora-rewrite.js'
import { generateModel } from '../src/models/generate/index.js'
import { loraAdapterBytes } from '../src/prefixes/lora-adapter.js'
import { seededLora } from '../test/helpers/lora-fixtures.js'
import type { Throughput } from './engine-batch.js'
import { LoopBench, type LoopRow } from './lora-loop.js'
import { machineInfo } from './machine.js'
import { alternate, fmt, spread } from './stats.js'
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
    await generateModel({ arch: 'llama', size: '15m', out: dir, seed: 0, separateProjections: true })
  }
  return dir
}

const modelDir = await ensureSeparateModel(args['cache-dir']!)
const original = await LoopBench.create(modelDir, threads, streams, [])
const derived = await LoopBench.create(modelDir, threads, streams)
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
  { name: 'base 16, LoRA graph', run: () => derived.run(rows([]), newTokens) },
  { name: 'base 16, q,v-only graph', run: () => qvOnly.run(rows([]), newTokens) },
  { name: 'LoRA q,v r8 ×16', run: () => derived.run(rows(qvLoras), newTokens) },
  { name: 'LoRA all r8 ×16', run: () => derived.run(rows(allLoras), newTokens) },
]
const RATIOS = [
  { name: '16 distinct LoRAs (q,v r8) / 16 base rows', num: 'LoRA q,v r8 ×16', den: 'base 16, LoRA graph', target: 0.85 },
  { name: '16 distinct LoRAs (all modules r8) / 16 base rows', num: 'LoRA all r8 ×16', den: 'base 16, LoRA graph' },
  { name: 'base rows: LoRA graph / original graph', num: 'base 16, LoRA graph', den: 'base 16, original graph', target: 0.98 },
  { name: 'base rows: q,v-only LoRA graph / original graph', num: 'base 16, q,v-only graph', den: 'base 16, original graph', target: 0.98 },
  { name: '16 distinct LoRAs (q,v r8) / base rows on the original graph', num: 'LoRA q,v r8 ×16', den: 'base 16, original graph' },
]

const measured: Array<Record<string, Throughput>> = []
for (let round = -1; round < rounds; round++) {
  const perRound: Record<string, Throughput> = {}
  for (const v of alternate(variants, Math.max(0, round))) perRound[v.name] = await v.run()
  if (round >= 0) measured.push(perRound)
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
  `memory per cached LoRA (A and B, float32): q,v r8 ${fmt(loraAdapterBytes(qvLoras[0]) / 1024, 1)} KiB; all modules r8 ${fmt(loraAdapterBytes(allLoras[0]) / 1024, 1)} KiB`,
  '',
]
process.stdout.write(lines.join('\n'))
