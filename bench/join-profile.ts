/**
 * A request joining a running batch: its time to first token, and the stall
 * it causes the rows already running (their step takes the joiner's prefill
 * too, since the loop runs the decode pass, then the prefill, then emits).
 * The engine's own step loop on the calling thread (the bench runs it on
 * side-worker.ts), as engine-profile.ts does.
 */
import { EngineLoop, type Forward } from '../src/engine/engine-loop.js'
import type { Generation } from '../src/engine/generation.js'
import type { PrefixKV } from '../src/domain/prefix-kv.js'
import { median } from './stats.js'

export interface JoinProfile {
  /** Per joiner: from submit to its first token, ms. */
  ttftMs: number[]
  /** Per joiner: how much longer the step that prefilled it took than a plain decode step (median), ms. */
  stallMs: number[]
  /** Median plain decode step of the running batch, ms. */
  decodeStepMs: number
  runningRows: number
}

export type MakeGeneration = (id: number, prompt: number[], prefix: PrefixKV, newTokens: number) => Generation

/**
 * `prompts.length - 1` rows run `2 * newTokens` tokens; every `every` steps
 * one more request (the last prompt and prefix) joins and asks for 4 tokens.
 */
export async function profileJoins(
  make: MakeGeneration,
  forward: Forward,
  shape: { numLayers: number; numKvHeads: number; headDim: number },
  vocabSize: number,
  prompts: readonly number[][],
  prefixes: readonly PrefixKV[],
  newTokens: number,
  every = 4,
): Promise<JoinProfile> {
  const running = prompts.length - 1
  const stepEnds: number[] = []
  const joinSteps = new Set<number>()
  const submittedAt = new Map<number, number>()
  const ttftMs: number[] = []
  let left = running
  let nextId = 1000
  let resolveDone!: () => void
  const done = new Promise<void>((r) => (resolveDone = r))
  const loop = new EngineLoop(forward, shape, vocabSize, { maxBatchSize: 64, maxBatchTokens: 1 << 20, maxPrefillTokens: 1 << 20, maxWaiting: 1024 }, {
    tokens: (events) => {
      const now = performance.now()
      stepEnds.push(now)
      for (const e of events) {
        const at = submittedAt.get(e.id)
        if (at !== undefined) {
          ttftMs.push(now - at)
          submittedAt.delete(e.id)
          joinSteps.add(stepEnds.length - 1)
        }
        if (e.finish && e.id <= running) left--
      }
      if (left === 0) resolveDone()
      else if (stepEnds.length > 1 && stepEnds.length % every === 0 && left === running) {
        const id = nextId++
        submittedAt.set(id, performance.now())
        loop.submit(make(id, prompts[running], prefixes[running], 4))
      }
    },
    failed: (id, error) => {
      throw new Error(`request ${id} failed: ${error.message}`)
    },
    idle: () => {},
  })
  for (let i = 0; i < running; i++) loop.submit(make(i + 1, prompts[i], prefixes[i], 2 * newTokens))
  await done
  // Step 0 is the first prefill; a step's duration is from the previous step's end.
  const durations = stepEnds.slice(1).map((t, i) => ({ step: i + 1, ms: t - stepEnds[i] }))
  const plain = median(durations.filter((d) => !joinSteps.has(d.step) && !joinSteps.has(d.step - 1)).map((d) => d.ms))
  const stallMs = durations.filter((d) => joinSteps.has(d.step)).map((d) => d.ms - plain)
  return { ttftMs, stallMs, decodeStepMs: plain, runningRows: running }
}
