/**
 * The batching property itself: every request of a random mix gets, inside
 * the continuous batch, exactly what it gets alone. Each fast-check run first
 * runs every request alone (one after another, so each is a batch of one),
 * then the whole mix with its staggered arrivals, and compares.
 */
import fc from 'fast-check'
import { finishRuleViolations, outcomeDifferences, describeRequest } from './batching-compare.js'
import type { EngineClient } from '../../src/engine/engine-client.js'
import { mixArb, type MixSpace } from './batching-arbitraries.js'
import { runEachAlone, runMix, type RequestCase } from './batching-requests.js'

/** The worker's EngineClient, or the in-process engine. */
export interface TestEngine {
  spec: EngineClient['spec']
  submit: EngineClient['submit']
}

export interface Target {
  name: string
  engine: TestEngine
  prefixes: ReadonlyMap<string, unknown>
  /** LoRA adapters the engine holds, which requests may name beside prefixes. */
  loras?: ReadonlyMap<string, unknown>
}

export interface PropertyRun {
  numRuns: number
  seed: number
}

export interface PropertyReport {
  /** Requests compared over all runs. */
  requests: number
  /** Tokens compared over all runs. */
  tokens: number
  reasons: Record<string, number>
}

/** Checks one mix; throws with every difference found, so fast-check can shrink it. */
export async function checkMix(fixture: Target, mix: RequestCase[], report?: PropertyReport): Promise<void> {
  const eos = fixture.engine.spec.eosTokenIds
  const alone = await runEachAlone(fixture.engine, mix)
  const batched = await runMix(fixture.engine, mix)
  const problems: string[] = []
  mix.forEach((req, i) => {
    const label = `request ${i} ${describeRequest(req)}`
    problems.push(...outcomeDifferences(label, batched[i], alone[i]))
    problems.push(...finishRuleViolations(`${label} alone`, req, alone[i], eos))
    if (report) {
      report.requests++
      report.tokens += batched[i].ids.length
      report.reasons[batched[i].reason] = (report.reasons[batched[i].reason] ?? 0) + 1
    }
  })
  if (problems.length > 0) throw new Error(`${fixture.name}: batched differs from alone\n${problems.join('\n')}`)
}

export async function assertBatchingProperty(fixture: Target, space: Omit<MixSpace, 'prefixKeys' | 'vocabSize'>, run: PropertyRun): Promise<PropertyReport> {
  const report: PropertyReport = { requests: 0, tokens: 0, reasons: {} }
  const full: MixSpace = {
    ...space,
    vocabSize: fixture.engine.spec.vocabSize,
    prefixKeys: [...fixture.prefixes.keys()],
    loraKeys: [...(fixture.loras?.keys() ?? [])],
  }
  await fc.assert(
    fc.asyncProperty(mixArb(full), (mix) => checkMix(fixture, mix, report)),
    { numRuns: run.numRuns, seed: run.seed },
  )
  return report
}
