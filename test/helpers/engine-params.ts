import type { GenerationParams } from '../../src/engine/protocol.js'
import { normalizeSamplingParams } from '../../src/engine/sampling/sampling-params.js'

/** Greedy decoding of `maxNewTokens` tokens, with a deadline far enough away never to matter. */
export function greedyParams(maxNewTokens: number): GenerationParams {
  return {
    ...normalizeSamplingParams({ doSample: false, seed: 0 }),
    maxNewTokens,
    stop: [],
    deadline: Date.now() + 3_600_000,
  }
}
