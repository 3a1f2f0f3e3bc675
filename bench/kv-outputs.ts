/**
 * Where onnxruntime-node loses time against Python onnxruntime on the same
 * file, isolated: two bare decode loops on the bench model at batch 16, the
 * same passes, differing only in what the graph returns.
 *
 *   present  the file as exported: every pass returns the whole present
 *            (past + new), which the binding copies into fresh zero-filled
 *            buffers, and which becomes the next past;
 *   step     the kv-step-outputs rewrite (src/engine/graph): the pass returns
 *            only its new columns, written into a cache with room in place
 *            (the engine's way; the past fed is the whole room, masked).
 *
 * Interleaved rounds; per round the ratio of wall time and of process CPU time
 * per decode step (CPU time counts only this process's work, so it is steadier
 * on a loaded machine; ORT's threads are told not to spin, or their spinning
 * would count as work).
 *
 *   TS_NODE_TRANSPILE_ONLY=1 node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/kv-outputs.ts [--rounds 8]
 */
import { parseArgs } from 'node:util'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { deriveModel } from '../src/engine/graph/derive-model.js'
import { kvStepOutputs } from '../src/engine/graph/kv-step-outputs.js'
import { readModelSpec } from '../src/engine/model-config.js'
import { machineInfo } from './machine.js'
import { fmt, spread } from './stats.js'
import { ensureModel, WORKLOAD } from './workload.js'

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '8' }, 'cache-dir': { type: 'string', default: '.cache/bench' } } })
const modelDir = await ensureModel(args['cache-dir']!, (m) => process.stderr.write(`[kv-outputs] ${m}\n`))
const spec = await readModelSpec(modelDir)
const file = join(modelDir, 'model.onnx')
const options = {
  executionProviders: ['cpu'],
  graphOptimizationLevel: 'all',
  interOpNumThreads: 1,
  intraOpNumThreads: WORKLOAD.threads,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
} as ort.InferenceSession.SessionOptions
const presentSession = await ort.InferenceSession.create(file, options)
const stepSession = await ort.InferenceSession.create((await deriveModel(file, [kvStepOutputs])).source as Uint8Array, options)

const L = spec.numLayers
const H = spec.numKvHeads
const D = spec.headDim
const B = WORKLOAD.streams
const START = WORKLOAD.prefixTokens + WORKLOAD.promptTokens
const STEPS = WORKLOAD.newTokens - 1

function feeds(past: number, keys: Float32Array[], values: Float32Array[], mask: BigInt64Array): Record<string, ort.Tensor> {
  const f: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', new BigInt64Array(B).fill(5n), [B, 1]),
    attention_mask: new ort.Tensor('int64', mask, [B, past + 1]),
    position_ids: new ort.Tensor('int64', new BigInt64Array(B).fill(BigInt(START)), [B, 1]),
  }
  for (let i = 0; i < L; i++) {
    f[`past_key_values.${i}.key`] = new ort.Tensor('float32', keys[i], [B, H, past, D])
    f[`past_key_values.${i}.value`] = new ort.Tensor('float32', values[i], [B, H, past, D])
  }
  return f
}

const randomCache = (length: number): Float32Array[] => Array.from({ length: L }, () => Float32Array.from({ length: B * H * length * D }, () => Math.random() - 0.5))

interface StepCost {
  wallMs: number
  cpuMs: number
}

async function timed(loop: () => Promise<void>): Promise<StepCost> {
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  await loop()
  const c = process.cpuUsage(c0)
  return { wallMs: (performance.now() - t0) / STEPS, cpuMs: (c.user + c.system) / 1000 / STEPS }
}

function presentLoop(): Promise<StepCost> {
  let keys = randomCache(START)
  let values = randomCache(START)
  return timed(async () => {
    for (let s = 0, past = START; s < STEPS; s++, past++) {
      const out = await presentSession.run(feeds(past, keys, values, new BigInt64Array(B * (past + 1)).fill(1n)))
      keys = Array.from({ length: L }, (_, i) => out[`present.${i}.key`].data as Float32Array)
      values = Array.from({ length: L }, (_, i) => out[`present.${i}.value`].data as Float32Array)
    }
  })
}

function stepLoop(): Promise<StepCost> {
  // Room for the whole run, as the engine's re-pack gives it (32 columns or an eighth more).
  const capacity = START + STEPS
  const keys = randomCache(capacity)
  const values = randomCache(capacity)
  const mask = new BigInt64Array(B * (capacity + 1))
  for (let r = 0; r < B; r++) {
    mask.fill(1n, r * (capacity + 1), r * (capacity + 1) + START)
    mask[r * (capacity + 1) + capacity] = 1n
  }
  return timed(async () => {
    for (let s = 0, length = START; s < STEPS; s++, length++) {
      const out = await stepSession.run(feeds(capacity, keys, values, mask))
      for (let i = 0; i < L; i++) {
        const k = out[`present_step.${i}.key`].data as Float32Array
        const v = out[`present_step.${i}.value`].data as Float32Array
        for (let rh = 0; rh < B * H; rh++) {
          keys[i].set(k.subarray(rh * D, rh * D + D), (rh * capacity + length) * D)
          values[i].set(v.subarray(rh * D, rh * D + D), (rh * capacity + length) * D)
        }
      }
      for (let r = 0; r < B; r++) mask[r * (capacity + 1) + length] = 1n
    }
  })
}

const rounds = Number(args.rounds)
const results: Array<{ present: StepCost; step: StepCost }> = []
for (let round = -1; round < rounds; round++) {
  // Alternate which goes first; round -1 warms up.
  const first = round % 2 === 0
  const a = first ? await presentLoop() : await stepLoop()
  const b = first ? await stepLoop() : await presentLoop()
  const r = first ? { present: a, step: b } : { present: b, step: a }
  if (round >= 0) results.push(r)
  process.stderr.write(`[kv-outputs] round ${round + 1}: present ${r.present.wallMs.toFixed(2)} ms (cpu ${r.present.cpuMs.toFixed(2)}), step ${r.step.wallMs.toFixed(2)} ms (cpu ${r.step.cpuMs.toFixed(2)})\n`)
}
const m = machineInfo()
const row = (name: string, xs: number[], digits = 2) => {
  const s = spread(xs)
  return `| ${name} | ${fmt(s.median, digits)} | ${fmt(s.min, digits)} | ${fmt(s.max, digits)} |`
}
const lines = [
  `Batch ${B}, decode steps from past ${START} to ${START + STEPS - 1}, ${WORKLOAD.threads} intra-op threads (no spinning), ${rounds} rounds. Machine: ${m.nproc} cores, ${m.cpuModel}, load ${m.loadAverage}; node ${m.node}, onnxruntime ${m.onnxruntime}.`,
  '',
  '| per decode step | median | min | max |',
  '|---|---|---|---|',
  row('present returned: wall ms', results.map((r) => r.present.wallMs)),
  row('step columns returned: wall ms', results.map((r) => r.step.wallMs)),
  row('present returned: CPU ms', results.map((r) => r.present.cpuMs)),
  row('step columns returned: CPU ms', results.map((r) => r.step.cpuMs)),
  row('ratio present / step, wall (within a round)', results.map((r) => r.present.wallMs / r.step.wallMs), 3),
  row('ratio present / step, CPU (within a round)', results.map((r) => r.present.cpuMs / r.step.cpuMs), 3),
  '',
]
process.stdout.write(lines.join('\n'))
