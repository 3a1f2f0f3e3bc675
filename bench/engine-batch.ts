/**
 * One batch through the engine worker (EngineClient): every row submitted at
 * once, timed from the first submit to the last finished token.
 */
import type { EngineClient } from '../src/engine/engine-client.js'
import type { GenerationParams } from '../src/engine/protocol.js'

export interface BatchRow {
  promptIds: number[]
  prefixKey: string
}

export interface Throughput {
  tokens: number
  seconds: number
}

export function greedyParams(maxNewTokens: number): GenerationParams {
  return {
    doSample: false,
    temperature: 1,
    topK: 0,
    topP: 1,
    repetitionPenalty: 1,
    seed: 0,
    maxNewTokens,
    stop: [],
    deadline: Date.now() + 3_600_000,
  }
}

export function runEngineBatch(engine: EngineClient, rows: readonly BatchRow[], newTokens: number): Promise<Throughput> {
  const started = performance.now()
  let tokens = 0
  let left = rows.length
  return new Promise((resolve, reject) => {
    for (const row of rows) {
      engine.submit(row.promptIds, [row.prefixKey], greedyParams(newTokens), {
        onToken: (e) => {
          tokens++
          if (e.finish && --left === 0) resolve({ tokens, seconds: (performance.now() - started) / 1000 })
        },
        onError: reject,
      })
    }
  })
}
