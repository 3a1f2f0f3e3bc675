/**
 * The engine's step loop. Each step: expire deadlines, schedule, re-pack the
 * batch if rows left, run one decode pass for the rows already running, then
 * prefill the newly admitted rows (sampling their first token), retire the
 * finished, merge the new rows into the running batch, and emit the tokens. Runs inside the worker; everything model-specific sits behind the
 * ForwardRunner, so this loop is the same for every model.
 */
import { buildDecode, buildPrefill } from './batch/forward-feed.js'
import { appendStep, compact, emptyKvState, prefillState, withRoom, type KvShape, type KvState } from './batch/kv-state.js'
import { epochMs } from '../domain/clock.js'
import type { ForwardResult } from './forward-runner.js'
import type { Generation } from './generation.js'
import type { TokenEvent } from './protocol.js'
import type { SchedulerLimits } from './scheduler.js'
import { StepLoop, type EngineSink } from './step-loop.js'

export interface Forward {
  run(feed: ReturnType<typeof buildDecode>): Promise<ForwardResult>
}

export type { EngineSink } from './step-loop.js'

export class EngineLoop extends StepLoop {
  private state: KvState

  constructor(
    private readonly forward: Forward,
    private readonly shape: KvShape,
    private readonly vocabSize: number,
    limits: SchedulerLimits,
    sink: EngineSink,
    now: () => number = Date.now,
  ) {
    super(limits, sink, now)
    this.state = emptyKvState(shape)
  }

  submit(gen: Generation): void {
    this.enqueue(gen)
  }

  override async step(): Promise<void> {
    this.expireDeadlines()
    const plan = this.scheduler.nextStep()
    const events: TokenEvent[] = []
    // Rows that finished or were cancelled since the last pass leave here.
    if (this.membershipChanged) this.repack([this.state])
    if (this.state.rowIds.length > 0) await this.decode(events)
    let added: KvState | null = null
    if (plan.admit.length > 0) added = await this.prefill(plan.admit, events)
    this.retireFinished(events)
    // Newly prefilled rows join the running batch: one re-pack per change.
    if (added) this.repack([this.state, added])
    this.steps++
    if (events.length > 0) this.sink.tokens(events, this.stats())
  }

  private repack(states: KvState[]): void {
    const rows = states.flatMap((state) =>
      state.rowIds.map((id, row) => ({ state, row, id })).filter((x) => this.scheduler.runningRequest(x.id)),
    )
    this.state = compact(this.shape, rows)
    this.membershipChanged = false
  }

  /** One decode pass: every running row feeds its last token. */
  private async decode(events: TokenEvent[]): Promise<void> {
    const rows = this.state.rowIds.map((id) => this.scheduler.runningRequest(id)!)
    this.state = withRoom(this.shape, this.state)
    const feed = buildDecode(this.state, rows.map((g) => g.lastToken))
    feed.loraRows = rows.map((g) => g.lora)
    this.lastBatchSize = rows.length
    const out = await this.runGuarded(rows, () => this.forward.run(feed))
    if (!out) return
    appendStep(this.shape, this.state, out.stepKeys, out.stepValues)
    rows.forEach((g, r) => this.sampleRow(g, () => g.step(out.logits, r * this.vocabSize), events))
  }

  /** The prefill pass of newly admitted rows; each samples its first token. */
  private async prefill(admitted: Generation[], events: TokenEvent[]): Promise<KvState | null> {
    const admittedAt = epochMs()
    const { feed, state } = buildPrefill(this.shape, admitted)
    feed.loraRows = admitted.map((g) => g.lora)
    const out = await this.runGuarded(admitted, () => this.forward.run(feed))
    if (!out) return null
    // Prompts are left-padded, so every row's last prompt token is the last column.
    admitted.forEach((g, r) => this.sampleRow(g, () => g.prefillStep(out.logits, r * feed.seqLen * this.vocabSize, feed.seqLen), events, admittedAt))
    return prefillState(this.shape, feed, state.rowIds, state.nextPosition, out.stepKeys, out.stepValues)
  }

  private retireFinished(events: TokenEvent[]): void {
    for (const e of events) {
      if (e.finish && this.scheduler.remove(e.id)) this.membershipChanged = true
    }
  }
}
