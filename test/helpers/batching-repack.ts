/**
 * Reads the engine's re-packing off its recorded steps. The key/value cache of
 * a decode pass is either the previous decode pass's `present` output, the
 * very same arrays (no re-pack), or freshly built arrays (a re-pack). The
 * engine should re-pack exactly when the set of running requests changed since
 * the previous decode pass (a prefill admitted rows, a request finished, or a
 * running request was cancelled),
 * and a re-pack should leave no holes: the past is as long as the longest row's
 * real history (prefix + prompt + tokens generated so far).
 */
import type { PassRecord, RequestInfo, StepRecord } from './batching-inprocess.js'

export interface RepackReport {
  decodes: number
  repacks: number
  /** Steps after which membership changed and a decode pass followed. */
  membershipChanges: number
  violations: string[]
}

export interface Cancellation {
  id: number
  /** How many steps had been recorded when it was asked for: it takes effect before step afterSteps. */
  afterSteps: number
}

/** `first` is the index of steps[0] in the engine's whole record (cancellations count from there). */
export function analyzeRepacks(
  steps: readonly StepRecord[],
  requests: ReadonlyMap<number, RequestInfo>,
  cancels: readonly Cancellation[] = [],
  first = 0,
): RepackReport {
  const report: RepackReport = { decodes: 0, repacks: 0, membershipChanges: 0, violations: [] }
  const generated = new Map<number, number>()
  const finished = new Set<number>()
  let previousOutput: Float32Array | null = null
  let changed = true
  let previousPastLen = 0
  steps.forEach((step, s) => {
    // A running request (it has tokens and has not finished) that was cancelled left the batch.
    const cancelledRunning = cancels.some((c) => c.afterSteps === first + s && generated.has(c.id) && !finished.has(c.id))
    if (cancelledRunning) changed = true
    // A step runs its decode pass first, then the prefill of newly admitted rows.
    let decode: PassRecord | undefined
    let prefill: PassRecord | undefined
    if (step.passes.length === 2) [decode, prefill] = step.passes
    else if (step.events.every((e) => generated.has(e.id))) decode = step.passes[0]
    else prefill = step.passes[0]

    if (decode) {
      report.decodes++
      if (changed && s > 0) report.membershipChanges++
      const reused = previousOutput !== null && decode.feed.pastKeys[0] === previousOutput
      if (reused === changed) {
        report.violations.push(
          `step ${s}: ${reused ? 'kept the old cache although membership changed' : 're-packed although membership did not change'}`,
        )
      }
      const rowIds = step.events.slice(0, decode.feed.batch).map((e) => e.id)
      if (reused) {
        if (decode.feed.pastLen !== previousPastLen + 1) report.violations.push(`step ${s}: past grew from ${previousPastLen} to ${decode.feed.pastLen}`)
      } else {
        report.repacks++
        const longest = Math.max(...rowIds.map((id) => realLength(requests.get(id)!, generated.get(id) ?? 0)))
        if (decode.feed.pastLen !== longest) {
          report.violations.push(`step ${s}: re-packed past is ${decode.feed.pastLen} long; the longest row holds ${longest}`)
        }
      }
      previousPastLen = decode.feed.pastLen
    }
    changed = prefill !== undefined || decode === undefined || step.events.some((e) => e.finish !== undefined)
    previousOutput = decode ? decode.result.presentKeys[0] : null
    for (const e of step.events) {
      generated.set(e.id, (generated.get(e.id) ?? 0) + 1)
      if (e.finish) finished.add(e.id)
    }
  })
  return report
}

/** Key/value positions a row holds before its next decode pass: the last sampled token is not in it yet. */
function realLength(info: RequestInfo, generatedSoFar: number): number {
  return info.prefixLength + info.promptLength + generatedSoFar - 1
}
