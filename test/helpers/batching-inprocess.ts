/**
 * The engine's step loop run in the test's own thread, with the same pieces
 * the worker wires together (EngineLoop, ForwardRunner, Generation), so a test
 * can watch every forward pass. It offers EngineClient's submit(), so the same
 * mixes run on it; arrivals become exact steps, because token events reach the
 * handlers synchronously inside the step that produced them.
 *
 * Nothing here changes engine code: the loop is observed through the Forward
 * it is given, which records each pass's feed and outputs.
 */
import type { RequestHandlers, SubmittedRequest } from '../../src/engine/engine-client.js'
import { EngineLoop, type Forward } from '../../src/engine/engine-loop.js'
import type { ForwardFeed } from '../../src/engine/batch/forward-feed.js'
import { ForwardRunner, type ForwardResult } from '../../src/engine/forward-runner.js'
import { Generation } from '../../src/engine/generation.js'
import { loadModel } from '../../src/engine/loaded-model.js'
import type { OrtBinding } from '../../src/engine/onnx-session.js'
import type { ModelSpec } from '../../src/domain/model-spec.js'
import type { GenerationParams, TokenEvent } from '../../src/engine/protocol.js'
import { CodedError } from '../../src/domain/error-table.js'
import { contributionPositions, type AdapterContribution } from '../../src/domain/adapter-contribution.js'
import type { LoraProjection } from '../../src/domain/lora-weights.js'
import { ENGINE_LIMITS } from './batching-models.js'

export interface PassRecord {
  feed: ForwardFeed
  result: ForwardResult
}

/** One engine step as seen from outside: the passes it ran and the tokens it emitted. */
export interface StepRecord {
  passes: PassRecord[]
  events: TokenEvent[]
}

export interface RequestInfo {
  prefixLength: number
  promptLength: number
}

export class InProcessEngine {
  readonly steps: StepRecord[] = []
  readonly requests = new Map<number, RequestInfo>()
  /** Cancellations, each with the number of steps recorded when it was asked for. */
  readonly cancels: Array<{ id: number; afterSteps: number }> = []
  private readonly adapters = new Map<string, AdapterContribution>()
  private readonly handlers = new Map<number, RequestHandlers>()
  private pendingPasses: PassRecord[] = []
  private nextId = 1

  private constructor(
    readonly spec: ModelSpec,
    private readonly loop: EngineLoop,
    private readonly newGeneration: (id: number, promptIds: number[], adapters: AdapterContribution[], params: GenerationParams) => Generation,
    /** The model's LoRA-targetable projections (empty: it serves no LoRA). */
    readonly loraProjections: readonly LoraProjection[],
  ) {}

  /**
   * `wrap` sits between the loop and the recorder, so a test of the tests can
   * make the loop look faulty (changed feeds, needless copies) and see the
   * checks catch it.
   */
  static async load(
    modelDir: string,
    limits: Partial<typeof ENGINE_LIMITS> = {},
    wrap: (f: Forward) => Forward = (f) => f,
    ortBinding: OrtBinding = 'auto',
  ): Promise<InProcessEngine> {
    const model = await loadModel(modelDir, { executionProvider: 'cpu', intraOpThreads: 1, ortBinding })
    const { spec, tokenizer } = model
    const shape = { numLayers: spec.numLayers, numKvHeads: spec.numKvHeads, headDim: spec.headDim }
    const runner = new ForwardRunner(model.session, model.signature, shape, model.loraInputs)
    let engine: InProcessEngine | null = null
    const recording: Forward = {
      writesPresentInPlace: runner.writesPresentInPlace,
      run: async (feed) => {
        const result = await runner.run(feed)
        // The engine appends to its cache and mask in place after the pass: keep the mask as this pass saw it.
        engine!.pendingPasses.push({ feed: { ...feed, attentionMask: feed.attentionMask.slice() }, result })
        return result
      },
    }
    const eos = new Set(spec.eosTokenIds)
    const loop = new EngineLoop(wrap(recording), shape, spec.vocabSize, { ...ENGINE_LIMITS, ...limits }, {
      tokens: (events) => engine!.onTokens(events),
      failed: (id, error) => {
        const h = engine!.handlers.get(id)
        engine!.handlers.delete(id)
        h?.onError(new CodedError(error))
      },
      idle: () => {},
    })
    engine = new InProcessEngine(
      spec,
      loop,
      (id, promptIds, adapters, params) => new Generation(id, promptIds, adapters, params, spec.vocabSize, eos, tokenizer),
      model.loraInputs,
    )
    return engine
  }

  /** Whether its decode passes write the whole present in place (the C API binding), rather than append to a cache with room. */
  get writesPresentInPlace(): boolean {
    return this.loop.writesPresentInPlace
  }

  putAdapter(key: string, adapter: AdapterContribution): void {
    this.adapters.set(key, adapter)
  }

  submit(promptIds: number[], prefixKeys: string[], params: GenerationParams, handlers: RequestHandlers): SubmittedRequest {
    const id = this.nextId++
    const prefixes = prefixKeys.map((k) => {
      const p = this.adapters.get(k)
      if (!p) throw new Error(`no prefix ${k}`)
      return p
    })
    this.handlers.set(id, handlers)
    this.requests.set(id, { prefixLength: prefixes.reduce((n, p) => n + contributionPositions(p), 0), promptLength: promptIds.length })
    this.loop.submit(this.newGeneration(id, promptIds, prefixes, params))
    return {
      id,
      // As EngineClient does: the handler goes first, so no later token reaches it.
      cancel: () => {
        if (!this.handlers.delete(id)) return
        this.cancels.push({ id, afterSteps: this.steps.length })
        this.loop.cancel(id)
      },
    }
  }

  private onTokens(events: TokenEvent[]): void {
    this.steps.push({ passes: this.pendingPasses, events })
    this.pendingPasses = []
    for (const e of events) {
      const h = this.handlers.get(e.id)
      if (!h) continue
      if (e.finish) this.handlers.delete(e.id)
      h.onToken(e)
    }
  }
}
