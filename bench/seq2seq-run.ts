/**
 * The seq2seq benchmark: a random BART of useful size (the generator's
 * `bench` shape: d_model 256, 4 + 4 layers, 8 heads, vocab 8192), 16 requests
 * of 16 source tokens and 64 new tokens, 2 intra-op threads, run through the
 * engine's own encoder-decoder loop (Seq2seqLoop + Seq2seqRunner, as the worker
 * wires them) in this process, which runs nothing else. Variants side by side
 * in rounds, ratios per round, median over rounds (see bench/README.md).
 * Also reported: what admission costs per row (the encoder pass and the first
 * decoder pass that yields the cross-attention keys/values) against one
 * decoder step per row.
 *
 *   TS_NODE_TRANSPILE_ONLY=1 node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/seq2seq-run.ts [--rounds 5]
 */
import { access } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { AdapterContribution } from '../src/domain/adapter-contribution.js'
import type { PrefixKV } from '../src/domain/prefix-kv.js'
import { Generation } from '../src/engine/generation.js'
import { Seq2seqLoop, type Seq2seqForward } from '../src/engine/seq2seq-loop.js'
import { loadSeq2seqModel } from '../src/engine/seq2seq-model.js'
import { Seq2seqRunner } from '../src/engine/seq2seq-runner.js'
import { generateSeq2seqModel } from '../src/models/generate/seq2seq/seq2seq-directory.js'
import { greedyParams } from '../test/helpers/engine-params.js'
import type { Throughput } from './engine-batch.js'
import { machineInfo } from './machine.js'
import { alternate, fmt, spread } from './stats.js'
import { benchPrefix, benchPrompts } from './workload.js'

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, 'cache-dir': { type: 'string', default: '.cache/bench' } } })
const rounds = Number(args.rounds)
const log = (msg: string) => process.stderr.write(`[bench seq2seq] ${msg}\n`)
const STREAMS = 16
const SOURCE_TOKENS = 16
const NEW_TOKENS = 64
const PREFIX_TOKENS = 16
const THREADS = 2

const modelDir = resolve(join(args['cache-dir']!, 'bart-bench-seed0'))
try {
  await access(join(modelDir, 'decoder_with_past_model.onnx'))
} catch {
  log(`generating the bench BART into ${modelDir}`)
  await generateSeq2seqModel({ arch: 'bart', size: 'bench', out: modelDir, seed: 0 })
}
const model = await loadSeq2seqModel(modelDir, { executionProvider: 'cpu', intraOpThreads: THREADS })
const { spec, tokenizer } = model
const shape = { numLayers: spec.numLayers, numHeads: spec.numKvHeads, headDim: spec.headDim, hiddenSize: spec.hiddenSize }
const runner = new Seq2seqRunner(model.sessions, shape)

/** Time in each kind of forward pass, and the rows it served. */
const cost = { encoderMs: 0, firstMs: 0, admitted: 0, stepMs: 0, rowSteps: 0, calls: 0 }
const timed = async <T>(run: () => Promise<T>, add: (ms: number) => void): Promise<T> => {
  const t0 = performance.now()
  const out = await run()
  add(performance.now() - t0)
  return out
}
const forward: Seq2seqForward = {
  encode: (s) => timed(() => runner.encode(s), (ms) => ((cost.encoderMs += ms), (cost.admitted += s.length))),
  firstStep: (e, start) => timed(() => runner.firstStep(e, start), (ms) => (cost.firstMs += ms)),
  step: (c, tokens) => timed(() => runner.step(c, tokens), (ms) => ((cost.stepMs += ms), (cost.rowSteps += tokens.length), cost.calls++)),
}

let finishWaiters = new Map<number, () => void>()
let tokensSeen = 0
const loop = new Seq2seqLoop(
  forward,
  { shape, vocabSize: spec.vocabSize, decoderStartTokenId: spec.decoderStartTokenId!, limits: { maxBatchSize: STREAMS, maxBatchTokens: 1 << 20, maxPrefillTokens: 1 << 20, maxWaiting: 64 } },
  {
    tokens: (events) => {
      tokensSeen += events.length
      for (const e of events) if (e.finish) finishWaiters.get(e.id)?.()
    },
    failed: (id, err) => log(`request ${id} failed: ${err.message}`),
    idle: () => {},
  },
)

const sources = benchPrompts(STREAMS, SOURCE_TOKENS, spec.vocabSize, spec.bosTokenId ?? 1)
const prefixes = Array.from({ length: STREAMS }, (_, i) => benchPrefix(spec, PREFIX_TOKENS, 100 + i))
const halfLength = Array.from({ length: STREAMS }, (_, i) => benchPrefix(spec, i % 2 === 0 ? PREFIX_TOKENS / 2 : PREFIX_TOKENS, 200 + i))
let nextId = 1

/** Every row submitted at once; timed from the first submit to the last finished token. */
async function batch(prefixOf: (row: number) => PrefixKV[]): Promise<Throughput> {
  const adaptersOf = (row: number): AdapterContribution[] => prefixOf(row).map((prefix) => ({ kind: 'past_kv', prefix }))
  // No EOS: every row generates exactly NEW_TOKENS, so the variants do the same work and
  // rows that happen to stop early do not shrink one variant's batches.
  const eos = new Set<number>()
  finishWaiters = new Map()
  tokensSeen = 0
  const started = performance.now()
  const done = sources.map((source, row) => {
    const id = nextId++
    const finished = new Promise<void>((resolve) => finishWaiters.set(id, resolve))
    loop.submit(new Generation(id, [spec.decoderStartTokenId!], adaptersOf(row), greedyParams(NEW_TOKENS), spec.vocabSize, eos, tokenizer), source)
    return finished
  })
  await Promise.all(done)
  return { tokens: tokensSeen, seconds: (performance.now() - started) / 1000 }
}

const variants: Array<{ name: string; run: () => Promise<Throughput> }> = [
  { name: 'shared prefix 16', run: () => batch(() => [prefixes[0]]) },
  { name: 'mixed prefixes 16', run: () => batch((row) => [prefixes[row]]) },
  { name: 'mixed prefix lengths 16 (8 and 16 tokens)', run: () => batch((row) => [halfLength[row]]) },
  { name: 'no prefix 16', run: () => batch(() => []) },
]
const RATIOS = [
  { name: 'mixed / shared prefix, 16 streams', num: 'mixed prefixes 16', den: 'shared prefix 16', target: 0.95 },
  { name: 'mixed prefix lengths / shared prefix (two cohorts per step)', num: 'mixed prefix lengths 16 (8 and 16 tokens)', den: 'shared prefix 16' },
  { name: 'no prefix / shared prefix', num: 'no prefix 16', den: 'shared prefix 16' },
]

const measured: Array<Record<string, Throughput>> = []
for (let round = -1; round < rounds; round++) {
  const perRound: Record<string, Throughput> = {}
  if (round === 0) Object.assign(cost, { encoderMs: 0, firstMs: 0, admitted: 0, stepMs: 0, rowSteps: 0, calls: 0 })
  for (const v of alternate(variants, Math.max(0, round))) perRound[v.name] = await v.run()
  if (round >= 0) measured.push(perRound)
  log(`${round < 0 ? 'warm-up' : `round ${round + 1}/${rounds}`}: ${variants.map((v) => `${v.name} ${(perRound[v.name].tokens / perRound[v.name].seconds).toFixed(0)}`).join(', ')} tok/s`)
}

const rate = (t: Throughput) => t.tokens / t.seconds
const m = machineInfo()
const lines = [
  `Machine: ${JSON.stringify(m)}`,
  '',
  `Model: generated BART (bench shape: d_model ${spec.hiddenSize}, ${spec.numLayers} + ${spec.numLayers} layers, ${spec.numKvHeads} heads, vocab ${spec.vocabSize}); ${STREAMS} requests × ${SOURCE_TOKENS} source tokens × ${NEW_TOKENS} new tokens, prefixes of ${PREFIX_TOKENS} virtual tokens, greedy, ${THREADS} threads, ${rounds} rounds after one warm-up.`,
  '',
  '| variant | generated tokens/s, median (min–max) |',
  '|---|---|',
  ...variants.map((v) => {
    const s = spread(measured.map((r) => rate(r[v.name])))
    return `| ${v.name} | ${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)}) |`
  }),
  '',
  '| ratio (per round, median over rounds) | median | min | max | target |',
  '|---|---|---|---|---|',
  ...RATIOS.map((r) => {
    const s = spread(measured.map((x) => rate(x[r.num]) / rate(x[r.den])))
    return `| ${r.name} | ${fmt(s.median, 3)} | ${fmt(s.min, 3)} | ${fmt(s.max, 3)} | ${r.target === undefined ? '—' : `≥ ${r.target}`} |`
  }),
  '',
  '| admission cost (all measured rounds) | ms per admitted row |',
  '|---|---|',
  `| encoder pass (batched over the rows admitted together) | ${fmt(cost.encoderMs / cost.admitted, 3)} |`,
  `| first decoder pass (cross-attention keys/values) | ${fmt(cost.firstMs / cost.admitted, 3)} |`,
  `| for comparison: one with-past decoder step, per row | ${fmt(cost.stepMs / cost.rowSteps, 3)} (${cost.calls} calls, ${fmt(cost.rowSteps / cost.calls, 1)} rows per call) |`,
  '',
]
process.stdout.write(`${lines.join('\n')}\n`)
await loop.stop()
