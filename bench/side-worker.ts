/**
 * A worker thread for the measurements that must not run on the main thread:
 * the bare loop and the engine step profile. There they are in the same
 * situation as the engine's own worker (their own isolate, heap and event
 * loop) and do not pay for the main thread's HTTP server, undici and larger
 * heap. Gets the workload once; then runs one job per message.
 */
import { parentPort, workerData } from 'node:worker_threads'
import type { PrefixKV } from '../src/domain/prefix-kv.js'
import { BareLoop } from './bare-loop.js'
import { collectGarbage } from './collect-garbage.js'
import { EngineProfiler } from './engine-profile.js'

export interface SideWorkerData {
  modelDir: string
  modelFile: string
  threads: number
  vocabSize: number
  prefixes: PrefixKV[]
  prompts: number[][]
  newTokens: number
}

export type SideJob = 'bare' | 'profile' | 'gc'

const data = workerData as SideWorkerData
const port = parentPort!
const loop = await BareLoop.create(data.modelFile, data.threads, data.vocabSize)
let profiler: EngineProfiler | null = null

async function run(job: SideJob): Promise<unknown> {
  if (job === 'gc') return collectGarbage()
  if (job === 'bare') return loop.run(data.prefixes, data.prompts, data.newTokens)
  profiler ??= await EngineProfiler.create(data.modelDir, data.threads)
  await profiler.run(data.prompts, data.prefixes, data.newTokens) // warm-up
  return profiler.run(data.prompts, data.prefixes, data.newTokens)
}

port.on('message', (job: SideJob) => {
  run(job).then(
    (result) => port.postMessage({ ok: true, result }),
    (err: Error) => port.postMessage({ ok: false, error: err.message }),
  )
})
port.postMessage({ ready: true })
