/**
 * The HTTP thread's handle on the engine worker: starts it, waits for the model
 * to load, routes token events to the request that asked, and reports the
 * worker's death (the process then goes not-ready and exits; the worker is
 * never re-created in-process).
 */
import { EventEmitter } from 'node:events'
import { Worker } from 'node:worker_threads'
import { CodedError, flatError } from '../domain/error-table.js'
import type { AdapterContribution, ContributionKind } from '../domain/adapter-contribution.js'
import type { ModelSpec } from '../domain/model-spec.js'
import {
  PROTOCOL_VERSION,
  type EngineOptions,
  type EngineStats,
  type FromWorker,
  type GenerationParams,
  type TokenEvent,
  type ToWorker,
} from './protocol.js'

export interface RequestHandlers {
  onToken(event: TokenEvent): void
  onError(error: CodedError): void
}

export interface SubmittedRequest {
  id: number
  cancel(): void
}

// Under the test runner the sources are TypeScript; built, they are .js.
const workerFile = new URL(`./worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)

export class EngineClient extends EventEmitter {
  private readonly pending = new Map<number, RequestHandlers>()
  private nextId = 1
  private alive = true
  stats: EngineStats = { running: 0, waiting: 0, batchSize: 0, steps: 0, prefixesCached: 0 }

  private constructor(
    private readonly worker: Worker,
    readonly spec: ModelSpec,
    /** The adapter contributions the loaded model can take (the store refuses kinds that need others). */
    readonly accepts: ReadonlySet<ContributionKind>,
  ) {
    super()
    worker.on('message', (msg: FromWorker) => this.onMessage(msg))
    worker.on('error', (err) => this.die(err.message))
    worker.on('exit', (code) => this.die(`engine worker exited with code ${code}`))
  }

  /** Starts the worker and resolves once the model is loaded and warmed up. */
  static start(opts: EngineOptions): Promise<EngineClient> {
    const worker = new Worker(workerFile, { workerData: opts })
    return new Promise((resolve, reject) => {
      const detach = () => {
        worker.off('error', fail)
        worker.off('exit', exited)
        worker.off('message', first)
      }
      function fail(err: Error) {
        detach()
        void worker.terminate()
        reject(err)
      }
      function exited(code: number) {
        fail(new Error(`engine worker exited with code ${code} while loading`))
      }
      function first(msg: FromWorker) {
        detach()
        if (msg.type === 'ready') resolve(new EngineClient(worker, msg.spec, new Set(msg.accepts)))
        else if (msg.type === 'fatal') fail(new CodedError(msg.error))
        else fail(new Error(`unexpected first message from the engine: ${msg.type}`))
      }
      worker.on('error', fail)
      worker.on('exit', exited)
      worker.on('message', first)
    })
  }

  get ready(): boolean {
    return this.alive
  }

  submit(promptIds: number[], adapterKeys: string[], params: GenerationParams, handlers: RequestHandlers): SubmittedRequest {
    const id = this.nextId++
    if (!this.alive) {
      queueMicrotask(() => handlers.onError(new CodedError(flatError('PREFIXD_NOT_READY', 'the engine is not running'))))
      return { id, cancel: () => {} }
    }
    this.pending.set(id, handlers)
    this.post({ v: PROTOCOL_VERSION, type: 'submit', id, promptIds, adapterKeys, params })
    return {
      id,
      cancel: () => {
        if (this.pending.delete(id)) this.post({ v: PROTOCOL_VERSION, type: 'cancel', id })
      },
    }
  }

  /** Sends an adapter's contribution to the worker (a copy; the worker keeps it under key). */
  putAdapter(key: string, adapter: AdapterContribution): void {
    this.post({ v: PROTOCOL_VERSION, type: 'putAdapter', key, adapter })
  }

  dropAdapter(key: string): void {
    this.post({ v: PROTOCOL_VERSION, type: 'dropAdapter', key })
  }

  /**
   * Stops the worker at its next step boundary (terminating it inside ONNX
   * Runtime aborts the whole process); requests still pending get an error.
   */
  async close(): Promise<void> {
    if (!this.alive) return
    this.alive = false
    this.worker.removeAllListeners('exit') // a deliberate stop is no death
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()))
    this.worker.postMessage({ v: PROTOCOL_VERSION, type: 'shutdown' } satisfies ToWorker)
    await exited
    const err = new CodedError(flatError('PREFIXD_NOT_READY', 'the engine stopped'))
    for (const h of this.pending.values()) h.onError(err)
    this.pending.clear()
  }

  private post(msg: ToWorker): void {
    if (this.alive) this.worker.postMessage(msg)
  }

  private onMessage(msg: FromWorker): void {
    if (msg.v !== PROTOCOL_VERSION) return
    if (msg.type === 'tokens') {
      this.stats = msg.stats
      this.emit('stats', msg.stats)
      for (const e of msg.events) {
        const h = this.pending.get(e.id)
        if (!h) continue
        if (e.finish) this.pending.delete(e.id)
        h.onToken(e)
      }
    } else if (msg.type === 'failed') {
      const h = this.pending.get(msg.id)
      this.pending.delete(msg.id)
      h?.onError(new CodedError(msg.error))
    } else if (msg.type === 'stats') {
      this.stats = msg.stats
      this.emit('stats', msg.stats)
    } else if (msg.type === 'fatal') {
      this.die(msg.error.message)
    }
  }

  private die(reason: string): void {
    if (!this.alive) return
    this.alive = false
    const err = new CodedError(flatError('PREFIXD_NOT_READY', `the engine stopped: ${reason}`))
    for (const h of this.pending.values()) h.onError(err)
    this.pending.clear()
    this.emit('died', reason)
  }
}
