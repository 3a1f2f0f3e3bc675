/**
 * The engine's own step loop (EngineLoop + ForwardRunner + Generation, what
 * the worker wires together) run in this thread, for the LoRA benchmark:
 * every variant runs the same loop on the same thread, so their ratios compare
 * only what differs, the graph and the rows' adapters.
 */
import { EngineLoop } from '../src/engine/engine-loop.js'
import { ForwardRunner } from '../src/engine/forward-runner.js'
import { Generation } from '../src/engine/generation.js'
import type { GraphRewrite } from '../src/engine/graph/graph-rewrite.js'
import { loadModel, type LoadedModel } from '../src/engine/loaded-model.js'
import type { LoraAdapter } from '../src/domain/lora-weights.js'
import { greedyParams } from '../test/helpers/engine-params.js'
import type { Throughput } from './engine-batch.js'

export interface LoopRow {
  promptIds: number[]
  lora: LoraAdapter | null
}

export class LoopBench {
  private nextId = 1
  private finished: (() => void) | null = null
  private tokens = 0

  private constructor(
    readonly model: LoadedModel,
    private readonly loop: EngineLoop,
  ) {}

  /** `rewrites`: [] loads the model file as is (no LoRA inputs), undefined derives it as the server does. */
  static async create(modelDir: string, threads: number, maxBatchSize: number, rewrites?: readonly GraphRewrite[]): Promise<LoopBench> {
    const model = await loadModel(modelDir, { executionProvider: 'cpu', intraOpThreads: threads, ...(rewrites ? { rewrites } : {}) })
    const { spec } = model
    const shape = { numLayers: spec.numLayers, numKvHeads: spec.numKvHeads, headDim: spec.headDim }
    const runner = new ForwardRunner(model.session, model.signature, shape, model.loraInputs)
    let bench: LoopBench | null = null
    const limits = { maxBatchSize, maxBatchTokens: 1 << 20, maxPrefillTokens: 1 << 16, maxWaiting: 1024 }
    const loop = new EngineLoop(runner, shape, spec.vocabSize, limits, {
      tokens: (events) => {
        bench!.tokens += events.length
      },
      failed: (_id, error) => {
        throw new Error(error.message)
      },
      idle: () => bench!.finished?.(),
    })
    bench = new LoopBench(model, loop)
    return bench
  }

  /** All rows submitted at once; timed until the loop goes idle. */
  async run(rows: readonly LoopRow[], newTokens: number): Promise<Throughput> {
    const { spec, tokenizer } = this.model
    const eos = new Set<number>()
    this.tokens = 0
    const started = performance.now()
    const idle = new Promise<void>((resolve) => (this.finished = resolve))
    for (const row of rows) {
      // No EOS: every row generates exactly newTokens, whatever the random weights pick.
      this.loop.submit(new Generation(this.nextId++, row.promptIds, row.lora ? [{ kind: 'lora', lora: row.lora }] : [], { ...greedyParams(newTokens), logprobs: false }, spec.vocabSize, eos, tokenizer))
    }
    await idle
    return { tokens: this.tokens, seconds: (performance.now() - started) / 1000 }
  }
}
