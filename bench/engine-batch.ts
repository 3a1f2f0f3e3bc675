/**
 * One batch through the engine worker (EngineClient): every row submitted at
 * once, timed from the first submit to the last finished token.
 */
import type { EngineClient } from '../src/engine/engine-client.js'
import type { GenerationParams } from '../src/engine/protocol.js'
import { greedyParams } from '../test/helpers/engine-params.js'

export interface BatchRow {
  promptIds: number[]
  /** Engine keys of the row's adapters, composed in order; [] for none. */
  adapterKeys: string[]
}

export interface Throughput {
  tokens: number
  seconds: number
}


/**
 * Greedy, no logprobs reported: what the HTTP routes ask for a request that
 * wants no details, and what the Python loop computes (an argmax).
 */
export function benchParams(newTokens: number): GenerationParams {
  return { ...greedyParams(newTokens), logprobs: false }
}

export function runEngineBatch(engine: EngineClient, rows: readonly BatchRow[], newTokens: number): Promise<Throughput> {
  const started = performance.now()
  let tokens = 0
  let left = rows.length
  return new Promise((resolve, reject) => {
    for (const row of rows) {
      engine.submit(row.promptIds, row.adapterKeys, benchParams(newTokens), {
        onToken: (e) => {
          tokens++
          if (e.finish && --left === 0) resolve({ tokens, seconds: (performance.now() - started) / 1000 })
        },
        onError: reject,
      })
    }
  })
}
