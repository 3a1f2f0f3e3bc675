/**
 * prefixd's benchmark: the workload of bench/workload.ts, every variant side by side in
 * one process, interleaved in rounds (these machines are shared and noisy), and
 * each ratio taken within a round, then the median over rounds.
 *
 *   TS_NODE_TRANSPILE_ONLY=1 node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/run.ts [--rounds 5]
 *
 * Prints a markdown report on stdout (progress on stderr) and writes the raw
 * numbers to <cache-dir>/last.json. See bench/README.md.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { findModelFile } from '../src/engine/onnx-session.js'
import { readModelSpec } from '../src/engine/model-config.js'
import { TextTokenizer } from '../src/engine/tokenizer.js'
import { BareLoop } from './bare-loop.js'
import { runEngineBatch, type BatchRow, type Throughput } from './engine-batch.js'
import { httpConcurrent, httpSequential, startServer, writePrefixFolder, type GenerateBody } from './http-bench.js'
import { machineInfo } from './machine.js'
import { promptOfTokens } from './prompt-text.js'
import { startPythonReferences } from './python-variants.js'
import { report, RATIOS, type Measured } from './report.js'
import { SideWorker } from './side-client.js'
import { alternate } from './stats.js'
import { collectGarbage } from './collect-garbage.js'
import { benchPrefix, benchPrompts, ensureModel, WORKLOAD } from './workload.js'

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    'cache-dir': { type: 'string', default: '.cache/bench' },
    python: { type: 'string', default: 'python3' },
  },
})
const rounds = Number(args.rounds)
/** The pause before each variant (settle()), in ms. */
const SETTLE_MS = 300
const cacheDir = args['cache-dir']!
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`)

const { streams, promptTokens, newTokens, prefixTokens, threads } = WORKLOAD
const modelDir = await ensureModel(cacheDir, log)
const spec = await readModelSpec(modelDir)
const bos = spec.bosTokenId ?? 1
const prefixes = Array.from({ length: streams }, (_, i) => benchPrefix(spec, prefixTokens, 100 + i))
const prompts = benchPrompts(streams, promptTokens, spec.vocabSize, bos)

const prefixDir = await mkdtemp(join(tmpdir(), 'prefixd-bench-'))
const prefixIds = await writePrefixFolder(prefixDir, prefixes)
log('starting the HTTP server (engine worker, model load, warm-up)')
const server = await startServer(modelDir, prefixDir, threads, streams)
const engine = server.app.engine
prefixes.forEach((p, i) => engine.putAdapter(`mixed-${i}`, { kind: 'past_kv', prefix: p }))
engine.putAdapter('shared', { kind: 'past_kv', prefix: prefixes[0] })
const tokenizer = await TextTokenizer.load(modelDir, spec.bosTokenId)
const bodies: GenerateBody[] = prefixIds.map((id, i) => ({
  inputs: promptOfTokens(tokenizer, promptTokens, i + 1),
  parameters: { prefix_id: id, max_new_tokens: newTokens },
}))
const modelFile = await findModelFile(modelDir)
const bare = await BareLoop.create(modelFile, threads, spec.vocabSize)
const side = await SideWorker.start({ modelDir, modelFile, threads, vocabSize: spec.vocabSize, prefixes, prompts, newTokens })
const python = await startPythonReferences(args.python!, prefixDir, { modelDir, modelFile, threads, prompts, prefixes, newTokens }, log)

const rows = (n: number, shared: boolean): BatchRow[] =>
  prompts.slice(0, n).map((promptIds, i) => ({ promptIds, adapterKeys: [shared ? 'shared' : `mixed-${i}`] }))
const bareRuns: Array<{ runSeconds: number; seconds: number }> = []
// Compared variants run back to back (the machine's load drifts), in this
// order on even rounds and reversed on odd ones, so neither side of a ratio
// always goes first.
const variants: Array<{ name: string; run: () => Promise<Throughput> }> = [
  { name: 'engine shared 8', run: () => runEngineBatch(engine, rows(8, true), newTokens) },
  { name: 'engine mixed 8', run: () => runEngineBatch(engine, rows(8, false), newTokens) },
  { name: 'engine shared 16', run: () => runEngineBatch(engine, rows(16, true), newTokens) },
  { name: 'engine mixed 16', run: () => runEngineBatch(engine, rows(16, false), newTokens) },
  {
    name: 'bare loop 16',
    run: async () => {
      const r = await side.bare()
      bareRuns.push(r)
      return r
    },
  },
  { name: 'http concurrent 16', run: () => httpConcurrent(server.url, bodies) },
  { name: 'http sequential 16', run: () => httpSequential(server.url, bodies) },
  // The same loop on the main thread, beside the idle HTTP server: for the record.
  { name: 'bare loop 16 (main thread)', run: () => bare.run(prefixes, prompts, newTokens) },
  ...python.variants,
]

/**
 * Before each variant, outside its timing: the garbage of the ones before
 * collected (the bare loops leave hundreds of MB of output buffers) and a
 * pause for their threads to go quiet (ONNX Runtime's and torch's spin after
 * their work). Without it a variant paid for its neighbour: a probe measured
 * HTTP / engine at 0.927 right after the side worker's bare loop and 0.978
 * with this in between (20 rounds, alternating).
 */
async function settle(): Promise<void> {
  collectGarbage()
  await side.collectGarbage()
  await sleep(SETTLE_MS)
}

const measured: Measured = { rounds: [], variants: variants.map((v) => v.name) }
try {
  for (let round = -1; round < rounds; round++) {
    const perRound: Record<string, Throughput> = {}
    for (const v of alternate(variants, Math.max(0, round))) {
      await settle()
      perRound[v.name] = await v.run()
    }
    // Round -1 warms up: ORT's first runs at each shape, the prefix catalog's first reads, JIT.
    if (round >= 0) measured.rounds.push(perRound)
    log(`${round < 0 ? 'warm-up' : `round ${round + 1}/${rounds}`}: ${variants.map((v) => `${v.name} ${(perRound[v.name].tokens / perRound[v.name].seconds).toFixed(0)}`).join(', ')} tok/s`)
  }
  log('profiling the engine step loop on a worker thread')
  const profile = await side.profile()
  const ratios = RATIOS.filter((r) => measured.variants.includes(r.num) && measured.variants.includes(r.den))
  const text = report({ measured, machine: machineInfo(), profile, bareRuns: bareRuns.slice(1), ratios, rounds, skipped: python.skipped })
  process.stdout.write(text)
  await mkdir(cacheDir, { recursive: true })
  await writeFile(join(cacheDir, 'last.json'), JSON.stringify({ measured, profile, bareRuns }, null, 1))
} finally {
  python.close()
  await side.close()
  await server.app.close()
  await rm(prefixDir, { recursive: true, force: true })
}
