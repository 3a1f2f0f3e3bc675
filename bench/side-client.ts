/** The main thread's handle on side-worker.ts. */
import { Worker } from 'node:worker_threads'
import type { LoopTiming } from './bare-loop.js'
import type { StepProfile } from './engine-profile.js'
import type { SideJob, SideWorkerData } from './side-worker.js'

// Run as TypeScript through the loader, which the worker inherits (execArgv); built, .js.
const workerFile = new URL(`./side-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)

type Reply = { ready: true } | { ok: true; result: unknown } | { ok: false; error: string }

export class SideWorker {
  private constructor(private readonly worker: Worker) {}

  static start(data: SideWorkerData): Promise<SideWorker> {
    const worker = new Worker(workerFile, { workerData: data })
    return new Promise((resolve, reject) => {
      worker.once('error', reject)
      worker.once('message', (msg: Reply) => {
        worker.off('error', reject)
        if ('ready' in msg) resolve(new SideWorker(worker))
        else reject(new Error('side worker: unexpected first message'))
      })
    })
  }

  bare(): Promise<LoopTiming> {
    return this.job('bare') as Promise<LoopTiming>
  }

  profile(): Promise<StepProfile> {
    return this.job('profile') as Promise<StepProfile>
  }

  /** A full garbage collection of the worker's heap (collect-garbage.ts). */
  async collectGarbage(): Promise<void> {
    await this.job('gc')
  }

  close(): Promise<number> {
    return this.worker.terminate()
  }

  private job(job: SideJob): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.worker.once('message', (msg: Reply) => {
        if ('ready' in msg) reject(new Error('side worker: unexpected message'))
        else if (msg.ok) resolve(msg.result)
        else reject(new Error(msg.error))
      })
      this.worker.postMessage(job)
    })
  }
}
