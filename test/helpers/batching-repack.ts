/**
 * Reads the engine's re-packing off its recorded steps. The key/value cache of
 * a decode pass is either the previous decode pass's cache, the very same
 * arrays with one more column in use (no re-pack; or, where passes write the
 * whole present in place, the arrays the previous pass wrote), or freshly
 * built arrays (a re-pack). The engine should re-pack exactly when the set of running requests
 * changed since the previous decode pass (a prefill admitted rows, a request
 * finished, or a running request was cancelled), or when the cache's room ran
 * out (a growth: same rows, the previous pass had used every column). A
 * re-pack should leave no holes: the columns in use are as many as the longest
 * row's real history (prefix + prompt + tokens generated so far).
 */
import type { PassRecord, RequestInfo, StepRecord } from './batching-inprocess.js'

export interface RepackReport {
  decodes: number
  repacks: number
  /** Re-packs of unchanged rows because the cache had no free column left. */
  growths: number
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
  const report: RepackReport = { decodes: 0, repacks: 0, growths: 0, membershipChanges: 0, violations: [] }
  const generated = new Map<number, number>()
  const finished = new Set<number>()
  let previousCache: Float32Array | null = null
  let changed = true
  let previousUsed = 0
  let previousCapacity = 0
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
      const reused = previousCache !== null && decode.feed.pastKeys[0] === previousCache
      const used = usedColumns(decode)
      const grew = !reused && !changed && previousUsed === previousCapacity && decode.feed.pastLen > previousCapacity
      if (grew) report.growths++
      else if (reused === changed) {
        report.violations.push(
          `step ${s}: ${reused ? 'kept the old cache although membership changed' : 're-packed although membership did not change and room was left'}`,
        )
      }
      const rowIds = step.events.slice(0, decode.feed.batch).map((e) => e.id)
      if (reused || grew) {
        if (used !== previousUsed + 1) report.violations.push(`step ${s}: columns in use went from ${previousUsed} to ${used}`)
      } else {
        report.repacks++
        const longest = Math.max(...rowIds.map((id) => realLength(requests.get(id)!, generated.get(id) ?? 0)))
        if (used !== longest) {
          report.violations.push(`step ${s}: re-packed cache uses ${used} columns; the longest row holds ${longest}`)
        }
      }
      previousUsed = used
      previousCapacity = decode.feed.pastLen
    }
    changed = prefill !== undefined || decode === undefined || step.events.some((e) => e.finish !== undefined)
    // A pass that wrote its whole present in place hands that on as the next pass's past.
    previousCache = decode ? (decode.result.present?.keys[0] ?? decode.feed.pastKeys[0]) : null
    for (const e of step.events) {
      generated.set(e.id, (generated.get(e.id) ?? 0) + 1)
      if (e.finish) finished.add(e.id)
    }
  })
  return report
}

/** Past columns up to the last one any row uses (the mask's last column is the token being decoded). */
function usedColumns(pass: PassRecord): number {
  const { batch, pastLen, attentionMask } = pass.feed
  let used = 0
  for (let r = 0; r < batch; r++) {
    for (let t = pastLen - 1; t >= used; t--) {
      if (attentionMask[r * (pastLen + 1) + t] === 1n) {
        used = t + 1
        break
      }
    }
  }
  return used
}

/** Key/value positions a row holds before its next decode pass: the last sampled token is not in it yet. */
function realLength(info: RequestInfo, generatedSoFar: number): number {
  return info.prefixLength + info.promptLength + generatedSoFar - 1
}
