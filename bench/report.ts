/** The markdown report: throughputs, per-round ratios (median, min, max), where the time goes. */
import type { Throughput } from './engine-batch.js'
import type { StepProfile } from './engine-profile.js'
import type { MachineInfo } from './machine.js'
import { fmt, spread } from './stats.js'
import { PEFT_ONE_BY_ONE, PEFT_SHARED, PYTHON_ORT } from './python-variants.js'
import { WORKLOAD } from './workload.js'

export interface Measured {
  variants: string[]
  rounds: Array<Record<string, Throughput>>
}

export interface RatioSpec {
  name: string
  num: string
  den: string
  target?: number
}

export const RATIOS: RatioSpec[] = [
  { name: 'mixed / shared prefix, 8 streams (engine)', num: 'engine mixed 8', den: 'engine shared 8', target: 0.95 },
  { name: 'mixed / shared prefix, 16 streams (engine)', num: 'engine mixed 16', den: 'engine shared 16', target: 0.95 },
  { name: 'HTTP 16 concurrent / 16 sequential', num: 'http concurrent 16', den: 'http sequential 16' },
  { name: 'HTTP 16 concurrent / bare ORT loop', num: 'http concurrent 16', den: 'bare loop 16', target: 0.9 },
  { name: 'engine 16 mixed / bare ORT loop', num: 'engine mixed 16', den: 'bare loop 16', target: 0.9 },
  { name: 'bare loop on the main thread / on its own worker', num: 'bare loop 16 (main thread)', den: 'bare loop 16' },
  { name: 'HTTP 16 concurrent / Python onnxruntime bare loop (same file)', num: 'http concurrent 16', den: PYTHON_ORT, target: 0.9 },
  { name: 'engine 16 mixed (no HTTP) / Python onnxruntime bare loop', num: 'engine mixed 16', den: PYTHON_ORT },
  { name: 'HTTP 16 concurrent / engine 16 mixed (what the HTTP path costs)', num: 'http concurrent 16', den: 'engine mixed 16' },
  { name: 'bare onnxruntime-node loop / Python onnxruntime bare loop', num: 'bare loop 16', den: PYTHON_ORT },
  { name: 'HTTP 16 concurrent / transformers+PEFT one by one', num: 'http concurrent 16', den: PEFT_ONE_BY_ONE, target: 20 },
  { name: 'HTTP 16 concurrent / transformers+PEFT shared-prefix batch', num: 'http concurrent 16', den: PEFT_SHARED, target: 3 },
]

const rate = (t: Throughput) => t.tokens / t.seconds

export interface ReportInput {
  measured: Measured
  machine: MachineInfo
  profile: StepProfile
  bareRuns: Array<{ runSeconds: number; seconds: number }>
  ratios: RatioSpec[]
  rounds: number
  /** Variants that could not run here, and why. */
  skipped?: string[]
}

export function report({ measured, machine, profile, bareRuns, ratios, rounds, skipped = [] }: ReportInput): string {
  const lines: string[] = []
  const w = WORKLOAD
  lines.push(`Workload: llama 15m (generated, seed 0), ${w.streams} requests × ${w.promptTokens} prompt tokens → ${w.newTokens} new tokens, ` +
    `each its own ${w.prefixTokens}-token prefix, greedy, ${w.threads} intra-op threads; ${rounds} measured rounds after one warm-up round.`)
  lines.push('')
  lines.push(`Machine: ${machine.nproc} cores, ${machine.cpuModel}; load average at the end ${machine.loadAverage}; node ${machine.node}, onnxruntime ${machine.onnxruntime}.`)
  lines.push('')
  lines.push('| variant | generated tokens (per run) | tokens/s median | min | max |')
  lines.push('|---|---|---|---|---|')
  for (const v of measured.variants) {
    const s = spread(measured.rounds.map((r) => rate(r[v])))
    lines.push(`| ${v} | ${measured.rounds[0][v].tokens} | ${fmt(s.median)} | ${fmt(s.min)} | ${fmt(s.max)} |`)
  }
  lines.push('')
  for (const s of skipped) lines.push(`Skipped: ${s} (bench/README.md says how to install them).`)
  if (skipped.length > 0) lines.push('')
  lines.push('| ratio (within each round, then median over rounds) | median | min | max | target |')
  lines.push('|---|---|---|---|---|')
  for (const r of ratios) {
    const s = spread(measured.rounds.map((round) => rate(round[r.num]) / rate(round[r.den])))
    const target = r.target === undefined ? '' : `≥ ${r.target} ${s.median >= r.target ? 'met' : '**missed**'}`
    lines.push(`| ${r.name} | ${fmt(s.median, 3)} | ${fmt(s.min, 3)} | ${fmt(s.max, 3)} | ${target} |`)
  }
  lines.push('')
  const bareShare = bareRuns.map((b) => b.runSeconds / b.seconds)
  const bareSteps = w.newTokens - 1
  const bareDecode = spread(bareRuns.map((b) => (b.seconds * 1000) / (bareSteps + 1)))
  lines.push('Where the time goes (one engine run of the 16-stream workload, the engine\'s step loop with timers, on a worker thread like the engine\'s):')
  lines.push('')
  lines.push('| | ms |')
  lines.push('|---|---|')
  lines.push(`| engine prefill step (16 rows: 16 prefix positions as past, 16 prompt positions; logits for the last only) | ${fmt(profile.prefillMs, 1)} |`)
  lines.push(`| engine decode step: in ForwardRunner.run (session.run + tensor wrapping; the graph's greedy pick included) | ${fmt(profile.decodeRunMs, 2)} |`)
  lines.push(`| engine decode step: everything else (feed, appending the new columns, taking the picks, detokenize, yield) | ${fmt(profile.decodeRestMs, 2)} |`)
  lines.push(`| … of which Generation.step for the 16 rows (the graph's pick and logprob, detokenize, stop check) | ${fmt(profile.decodeSelectMs, 2)} |`)
  lines.push(`| bare loop, mean per pass (prefill included) | ${fmt(bareDecode.median, 2)} |`)
  lines.push(`| bare loop, share of time in session.run | ${fmt(spread(bareShare).median * 100, 1)} % |`)
  lines.push(`| JavaScript sampler select(), per row, greedy with logprob (log-sum-exp over the vocabulary; what a row costs when it needs the logits) | ${fmt(profile.selectWithLogprobUs / 1000, 3)} |`)
  lines.push(`| JavaScript sampler select(), per row, greedy without logprob | ${fmt(profile.selectWithoutLogprobUs / 1000, 3)} |`)
  const j = profile.joins
  const pct = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]
  lines.push(`| a request joining ${j.runningRows} running rows: time to first token, p50 / p99 (${j.ttftMs.length} joins) | ${fmt(pct(j.ttftMs, 0.5), 1)} / ${fmt(pct(j.ttftMs, 0.99), 1)} |`)
  lines.push(`| … the stall it causes the running rows (their step minus a plain decode step of ${fmt(j.decodeStepMs, 1)} ms), p50 / p99 | ${fmt(pct(j.stallMs, 0.5), 1)} / ${fmt(pct(j.stallMs, 0.99), 1)} |`)
  lines.push('')
  lines.push(`In-process engine throughput for that run: ${fmt(profile.tokens / profile.seconds)} tokens/s over ${profile.steps} steps.`)
  lines.push('')
  return lines.join('\n')
}
