/**
 * Prompt tokenization for the HTTP thread: short prompts inline (a message
 * round trip would cost more than encoding them), long ones on a tokenizer
 * worker thread, so that the HTTP thread is never busy more than the time of
 * INLINE_MAX_CHARS characters. A dead tokenizer worker is logged, and
 * prompts are then encoded inline: slower for the others, never wrong.
 */
import { Worker } from 'node:worker_threads'
import type { TextTokenizer } from './tokenizer.js'
import type { EncodeReply } from './tokenizer-worker.js'

/** Up to this many characters a prompt is encoded on the calling thread (well under a millisecond). */
export const INLINE_MAX_CHARS = 1024

const workerFile = new URL(`./tokenizer-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)

export interface PromptEncoder {
  encode(text: string): Promise<number[]>
}

export class OffThreadEncoder implements PromptEncoder {
  private readonly pending = new Map<number, { resolve(ids: number[]): void; reject(err: Error): void; text: string }>()
  private nextId = 1
  private worker: Worker | null

  private constructor(
    worker: Worker,
    private readonly inline: TextTokenizer,
    private readonly onDeath: (reason: string) => void,
  ) {
    this.worker = worker
    worker.on('message', (msg: EncodeReply) => {
      const p = this.pending.get(msg.id)
      if (!p) return
      this.pending.delete(msg.id)
      if ('ids' in msg) p.resolve(msg.ids)
      else p.reject(new Error(msg.error))
    })
    worker.on('error', (err) => this.die(err.message))
    worker.on('exit', (code) => this.die(`tokenizer worker exited with code ${code}`))
  }

  /** Starts the worker and resolves once its tokenizer is loaded. */
  static async start(modelDir: string, bosTokenId: number | null, inline: TextTokenizer, onDeath: (reason: string) => void): Promise<OffThreadEncoder> {
    const worker = new Worker(workerFile, { workerData: { modelDir, bosTokenId } })
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve())
      worker.once('error', reject)
    })
    return new OffThreadEncoder(worker, inline, onDeath)
  }

  encode(text: string): Promise<number[]> {
    if (text.length <= INLINE_MAX_CHARS || this.worker === null) return Promise.resolve(this.inline.encode(text))
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, text })
      this.worker!.postMessage({ id, text })
    })
  }

  async close(): Promise<void> {
    const worker = this.worker
    this.worker = null
    if (worker) {
      worker.removeAllListeners('exit')
      await worker.terminate()
    }
  }

  private die(reason: string): void {
    if (this.worker === null) return
    this.worker = null
    this.onDeath(reason)
    // Whatever was in flight is encoded here instead.
    for (const p of this.pending.values()) {
      try {
        p.resolve(this.inline.encode(p.text))
      } catch (err) {
        p.reject(err as Error)
      }
    }
    this.pending.clear()
  }
}
