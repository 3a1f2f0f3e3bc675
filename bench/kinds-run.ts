/**
 * The adapter-kinds benchmark: the DESIGN.md workload (15m llama, 16 streams
 * × 16 prompt tokens → 64 new tokens, 16 virtual tokens per adapter, 2
 * threads) with rows of different kinds in one batch, side by side in rounds:
 *
 * - engine prefix 16: every row its own prefix (today's workload);
 * - engine mixed kinds 16: rows cycle prompt tuning, P-tuning and prefix, each
 *   its own adapter (the prompt-learning ones read from PEFT-format files
 *   through the kind table, as an upload is);
 * - engine no adapter 16: no adapter at all;
 * - bare loop, exported graph / derived graph: the bare onnxruntime loop
 *   without adapters on model.onnx as exported and with the server's adapter
 *   rewrites (inputs_embeds, fed one zero row; LoRA, fed rank 0), not its
 *   speed ones: what serving adapters costs the no-adapter path;
 * - the same two graphs pass by pass (paired-passes.ts): each forward pass run
 *   on both sessions back to back, which a loaded machine's drift cannot
 *   bias; the median of the per-pass time ratios.
 *
 *   TS_NODE_TRANSPILE_ONLY=1 node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/kinds-run.ts [--rounds 5]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { deriveModel } from '../src/engine/graph/derive-model.js'
import { MODEL_REWRITES } from '../src/engine/graph/rewrites.js'
import type { GraphRewrite } from '../src/engine/graph/graph-rewrite.js'
import { greedyPick } from '../src/engine/graph/greedy-pick.js'
import { logitsToKeep } from '../src/engine/graph/logits-to-keep.js'
import { kvStepOutputs } from '../src/engine/graph/kv-step-outputs.js'
import { readModelSpec } from '../src/engine/model-config.js'
import { findModelFile } from '../src/engine/onnx-session.js'
import { mulberry32 } from '../src/models/generate/prng.js'
import { encodeF32 } from '../src/prefixes/dtype-convert.js'
import { readPeftFiles } from '../src/prefixes/adapter-files.js'
import { serializeSafetensors } from '../src/prefixes/safetensors.js'
import * as ort from 'onnxruntime-node'
import { BareLoop } from './bare-loop.js'
import { noLoraFeeds } from './no-lora-feeds.js'
import { pairedPasses } from './paired-passes.js'
import { runEngineBatch, type BatchRow, type Throughput } from './engine-batch.js'
import { startServer } from './http-bench.js'
import { machineInfo } from './machine.js'
import { alternate, fmt, median, quantile, spread } from './stats.js'
import { benchPrefix, benchPrompts, ensureModel, WORKLOAD } from './workload.js'

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, 'cache-dir': { type: 'string', default: '.cache/bench' } } })
const rounds = Number(args.rounds)
const log = (msg: string) => process.stderr.write(`[bench:kinds] ${msg}\n`)
const { streams, promptTokens, newTokens, prefixTokens, threads } = WORKLOAD

const modelDir = await ensureModel(args['cache-dir']!, log)
const spec = await readModelSpec(modelDir)
const prompts = benchPrompts(streams, promptTokens, spec.vocabSize, spec.bosTokenId ?? 1)

/** A PEFT save of a prompt-learning adapter: seeded vectors of the model's width, embedding-sized. */
function peftPromptAdapter(peftType: string, seed: number) {
  const random = mulberry32(seed)
  const values = Float32Array.from({ length: prefixTokens * spec.hiddenSize }, () => (random() * 2 - 1) * 0.05)
  const config = { peft_type: peftType, task_type: 'CAUSAL_LM', num_virtual_tokens: prefixTokens, token_dim: spec.hiddenSize, num_transformer_submodules: 1 }
  const weights = serializeSafetensors({ prompt_embeddings: { dtype: 'F32', shape: [prefixTokens, spec.hiddenSize], data: encodeF32(values) } })
  return readPeftFiles(JSON.stringify(config), weights).contribution
}

const emptyDir = await mkdtemp(join(tmpdir(), 'prefixd-bench-kinds-'))
log('starting the engine (model load, warm-up)')
const server = await startServer(modelDir, emptyDir, threads, streams)
const engine = server.app.engine
for (let i = 0; i < streams; i++) {
  engine.putAdapter(`prefix-${i}`, { kind: 'past_kv', prefix: benchPrefix(spec, prefixTokens, 100 + i) })
  engine.putAdapter(`prompt-${i}`, peftPromptAdapter('PROMPT_TUNING', 200 + i))
  engine.putAdapter(`ptune-${i}`, peftPromptAdapter('P_TUNING', 300 + i))
}
const KIND_CYCLE = ['prompt', 'ptune', 'prefix']
const rows = (key: (i: number) => string[]): BatchRow[] => prompts.map((promptIds, i) => ({ promptIds, adapterKeys: key(i) }))

const modelFile = await findModelFile(modelDir)
// The bare loops feed `present` back as past and read every position's logits: derive the adapter rewrites
// (inputs_embeds, LoRA) alone, without the ones for speed (kv-step-outputs drops `present`; logits-to-keep and
// greedy-pick change what comes out), so the two graphs differ only in what serving adapters costs base rows.
const SPEED_REWRITES: readonly GraphRewrite[] = [kvStepOutputs, logitsToKeep, greedyPick]
const derived = await deriveModel(modelFile, MODEL_REWRITES.filter((r) => !SPEED_REWRITES.includes(r)))
if (typeof derived.source === 'string') throw new Error('the rewrite did not apply to the bench model')
const bareExported = await BareLoop.create(modelFile, threads, spec.vocabSize)
const bareDerived = await BareLoop.create(derived.source, threads, spec.vocabSize)
// Zero-length prefixes: the bare loop's no-adapter path.
const noPrefixes = Array.from({ length: streams }, () => ({
  numVirtualTokens: 0, numLayers: spec.numLayers, numKvHeads: spec.numKvHeads, headDim: spec.headDim,
  keys: Array.from({ length: spec.numLayers }, () => new Float32Array(0)),
  values: Array.from({ length: spec.numLayers }, () => new Float32Array(0)),
}))

const sessionOptions: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], graphOptimizationLevel: 'all', interOpNumThreads: 1, intraOpNumThreads: threads }
const exportedSession = await ort.InferenceSession.create(modelFile, sessionOptions)
const derivedSession = await ort.InferenceSession.create(derived.source, sessionOptions)
// The server's derived graph also takes per-row LoRA inputs: a pass without LoRA rows feeds them rank 0.
const neutralEmbeds = { inputs_embeds: new ort.Tensor('float32', new Float32Array(spec.hiddenSize), [1, 1, spec.hiddenSize]), ...noLoraFeeds(derivedSession, streams) }
const passRatios: number[] = []

const variants: Array<{ name: string; run: () => Promise<Throughput> }> = [
  { name: 'engine prefix 16', run: () => runEngineBatch(engine, rows((i) => [`prefix-${i}`]), newTokens) },
  { name: 'engine mixed kinds 16', run: () => runEngineBatch(engine, rows((i) => [`${KIND_CYCLE[i % 3]}-${i}`]), newTokens) },
  { name: 'engine no adapter 16', run: () => runEngineBatch(engine, rows(() => []), newTokens) },
  { name: 'bare loop, exported graph', run: () => bareExported.run(noPrefixes, prompts, newTokens) },
  { name: 'bare loop, derived graph', run: () => bareDerived.run(noPrefixes, prompts, newTokens) },
]
const RATIOS = [
  { name: 'mixed kinds / prefix only (engine, 16 streams)', num: 'engine mixed kinds 16', den: 'engine prefix 16', target: '≥ 0.95' },
  { name: 'no adapter: derived graph / exported graph (bare loop)', num: 'bare loop, derived graph', den: 'bare loop, exported graph', target: '≈ 1' },
]

const measured: Array<Record<string, Throughput>> = []
const rate = (x: Throughput) => x.tokens / x.seconds
try {
  for (let round = -1; round < rounds; round++) {
    const perRound: Record<string, Throughput> = {}
    for (const v of alternate(variants, Math.max(0, round))) perRound[v.name] = await v.run()
    if (round >= 0) measured.push(perRound)
    const paired = await pairedPasses(exportedSession, derivedSession, prompts, newTokens, spec.numLayers, { heads: spec.numKvHeads, headDim: spec.headDim }, neutralEmbeds)
    if (round >= 0) passRatios.push(...paired.ratios)
    log(`${round < 0 ? 'warm-up' : `round ${round + 1}/${rounds}`}: ${variants.map((v) => `${v.name} ${fmt(rate(perRound[v.name]))}`).join(', ')} tok/s`)
  }
  const m = machineInfo()
  const lines = [
    `Workload: llama 15m (generated, seed 0), ${streams} requests × ${promptTokens} prompt tokens → ${newTokens} new tokens, ${prefixTokens} virtual tokens per adapter, greedy, ${threads} intra-op threads; ${rounds} measured rounds after one warm-up round.`,
    '',
    `Machine: ${m.nproc} cores, ${m.cpuModel}; load average at the end ${m.loadAverage}; node ${m.node}, onnxruntime ${m.onnxruntime}.`,
    '',
    '| variant | tokens/s median | min | max |',
    '|---|---|---|---|',
    ...variants.map((v) => {
      const s = spread(measured.map((r) => rate(r[v.name])))
      return `| ${v.name} | ${fmt(s.median)} | ${fmt(s.min)} | ${fmt(s.max)} |`
    }),
    '',
    '| ratio (within each round, then median over rounds) | median | min | max | target |',
    '|---|---|---|---|---|',
    ...RATIOS.map((r) => {
      const s = spread(measured.map((x) => rate(x[r.num]) / rate(x[r.den])))
      return `| ${r.name} | ${fmt(s.median, 3)} | ${fmt(s.min, 3)} | ${fmt(s.max, 3)} | ${r.target} |`
    }),
    '',
    `Paired passes, no adapter (${passRatios.length} forward passes, each run on both graphs back to back): time of the derived graph / the exported graph, median ${fmt(median(passRatios), 3)}, interquartile range ${fmt(quantile(passRatios, 0.25), 3)} to ${fmt(quantile(passRatios, 0.75), 3)}.`,
    '',
  ]
  process.stdout.write(lines.join('\n'))
} finally {
  await server.app.close()
  await rm(emptyDir, { recursive: true, force: true })
}
