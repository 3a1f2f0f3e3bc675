/**
 * Where an engine step's time goes, for RESULTS.md: the engine's own step loop
 * (EngineLoop, Generation, ForwardRunner, as the worker wires them) run on the
 * calling thread (the bench runs it on side-worker.ts), with a timing wrapper
 * around the forward pass. "run" is the time in
 * ForwardRunner.run (tensor wrapping + session.run, the graph's greedy pick
 * included); "rest" is everything else in a step: feed building, appending
 * the new key/value columns, re-packing, taking each row's pick, detokenizing,
 * the yield between steps. Plus the per-row cost of the JavaScript sampler
 * (what a row that needs its logits pays) with and without the log-sum-exp
 * its logprob needs.
 */
import { EngineLoop, type Forward } from '../src/engine/engine-loop.js'
import { ForwardRunner } from '../src/engine/forward-runner.js'
import { Generation } from '../src/engine/generation.js'
import { loadModel } from '../src/engine/loaded-model.js'
import { withLoraTargets } from '../src/engine/graph/lora-rewrite.js'
import { MODEL_REWRITES } from '../src/engine/graph/rewrites.js'
import { readModelSpec } from '../src/engine/model-config.js'
import { TokenSampler } from '../src/engine/sampling/sampler.js'
import type { PrefixKV } from '../src/domain/prefix-kv.js'
import { greedyParams } from '../test/helpers/engine-params.js'
import { benchParams } from './engine-batch.js'
import { profileJoins, type JoinProfile } from './join-profile.js'

export interface StepProfile {
  tokens: number
  seconds: number
  steps: number
  /** Mean per decode step, in ms. */
  decodeRunMs: number
  decodeRestMs: number
  /** Part of the rest: Generation.step for every row of a decode step (sampling, logprob, detokenizing, stop matching). */
  decodeSelectMs: number
  prefillMs: number
  /** The sampler, per row, in µs. */
  selectWithLogprobUs: number
  selectWithoutLogprobUs: number
  joins: JoinProfile
}

export class EngineProfiler {
  private constructor(
    private readonly make: (id: number, prompt: number[], prefix: PrefixKV, newTokens: number) => Generation,
    private readonly forward: Forward,
    private readonly shape: { numLayers: number; numKvHeads: number; headDim: number },
    private readonly vocabSize: number,
  ) {}

  static async create(modelDir: string, threads: number): Promise<EngineProfiler> {
    // The graph the server's worker derives (LORA_TARGET_MODULES at its default), not every rewrite there is.
    const { modelType } = await readModelSpec(modelDir)
    const rewrites = withLoraTargets(MODEL_REWRITES, undefined, modelType)
    const model = await loadModel(modelDir, { executionProvider: 'cpu', intraOpThreads: threads, rewrites })
    const { spec, tokenizer } = model
    const shape = { numLayers: spec.numLayers, numKvHeads: spec.numKvHeads, headDim: spec.headDim }
    const eos = new Set(spec.eosTokenIds)
    return new EngineProfiler(
      (id, prompt, prefix, newTokens) => new Generation(id, prompt, [{ kind: 'past_kv', prefix }], benchParams(newTokens), spec.vocabSize, eos, tokenizer),
      new ForwardRunner(model.session, model.signature, shape, model.loraInputs),
      shape,
      spec.vocabSize,
    )
  }

  async run(prompts: readonly number[][], prefixes: readonly PrefixKV[], newTokens: number): Promise<StepProfile> {
    const runs: Array<{ ms: number; seq: number }> = []
    const stepEnds: number[] = []
    const timed: Forward = {
      writesPresentInPlace: this.forward.writesPresentInPlace,
      run: async (feed) => {
        const t0 = performance.now()
        const out = await this.forward.run(feed)
        runs.push({ ms: performance.now() - t0, seq: feed.seqLen })
        return out
      },
    }
    let tokens = 0
    let left = prompts.length
    // Generation.step time, summed per step (the sink closes each step).
    let stepSelectMs = 0
    const selectPerStep: number[] = []
    const gens = prompts.map((p, i) => {
      const g = this.make(i + 1, p, prefixes[i], newTokens)
      const step = g.step.bind(g)
      g.step = (logits, offset, pick) => {
        const t0 = performance.now()
        const e = step(logits, offset, pick)
        stepSelectMs += performance.now() - t0
        return e
      }
      return g
    })
    const started = performance.now()
    let resolveDone!: () => void
    const done = new Promise<void>((r) => (resolveDone = r))
    const loop = new EngineLoop(timed, this.shape, this.vocabSize, { maxBatchSize: 64, maxBatchTokens: 1 << 20, maxPrefillTokens: 1 << 20, maxWaiting: 1024 }, {
      tokens: (events) => {
        stepEnds.push(performance.now())
        selectPerStep.push(stepSelectMs)
        stepSelectMs = 0
        tokens += events.length
        left -= events.filter((e) => e.finish).length
        if (left === 0) resolveDone()
      },
      failed: (id, error) => {
        throw new Error(`request ${id} failed: ${error.message}`)
      },
      idle: () => {},
    })
    for (const g of gens) loop.submit(g)
    await done
    const seconds = (performance.now() - started) / 1000
    // Step 0 is the prefill (its first tokens); later steps are decode passes.
    const decodeRuns = runs.filter((r) => r.seq === 1).map((r) => r.ms)
    const stepTimes = stepEnds.slice(1).map((t, i) => t - stepEnds[i])
    const meanRun = decodeRuns.reduce((a, b) => a + b, 0) / decodeRuns.length
    const meanStep = stepTimes.reduce((a, b) => a + b, 0) / stepTimes.length
    return {
      tokens,
      seconds,
      steps: stepEnds.length,
      decodeRunMs: meanRun,
      decodeRestMs: meanStep - meanRun,
      decodeSelectMs: selectPerStep.slice(1).reduce((a, b) => a + b, 0) / (selectPerStep.length - 1),
      prefillMs: stepEnds[0] - started,
      selectWithLogprobUs: this.selectCost(true),
      selectWithoutLogprobUs: this.selectCost(false),
      joins: await profileJoins(this.make, this.forward, this.shape, this.vocabSize, prompts, prefixes, newTokens),
    }
  }

  /** Mean µs of one greedy select() over a vocabulary-sized row of random logits. */
  private selectCost(logprobs: boolean): number {
    const V = this.vocabSize
    const rows = 64
    const logits = new Float32Array(rows * V).map(() => Math.random() * 10)
    const sampler = new TokenSampler(greedyParams(1), V, { logprobs })
    for (let r = 0; r < rows; r++) sampler.select(logits, r * V, []) // warm-up
    const t0 = performance.now()
    for (let rep = 0; rep < 10; rep++) for (let r = 0; r < rows; r++) sampler.select(logits, r * V, [])
    return ((performance.now() - t0) * 1000) / (10 * rows)
  }
}
