/**
 * The engine's step loop. Each step: expire deadlines, schedule, re-pack the
 * batch if rows left, run one decode pass for the rows already running, then
 * prefill the newly admitted rows (sampling their first token), retire the
 * finished, merge the new rows into the running batch, and emit the tokens. Runs inside the worker; everything model-specific sits behind the
 * ForwardRunner, so this loop is the same for every model.
 */
import { flatError, flattenError, type FlatError } from '../domain/error-table.js'
import { buildDecode, buildPrefill } from './batch/forward-feed.js'
import { appendStep, compact, emptyKvState, prefillState, withRoom, type KvShape, type KvState } from './batch/kv-state.js'
import { epochMs } from '../domain/clock.js'
import type { ForwardResult } from './forward-runner.js'
import type { Generation } from './generation.js'
import type { LoopStats, TokenEvent } from './protocol.js'
import { Scheduler, type SchedulerLimits } from './scheduler.js'

export interface Forward {
  run(feed: ReturnType<typeof buildDecode>): Promise<ForwardResult>
}

export interface EngineSink {
  tokens(events: TokenEvent[], stats: LoopStats): void
  failed(id: number, error: FlatError): void
  /** The loop went idle: the last requests finished or left. */
  idle(stats: LoopStats): void
}

export class EngineLoop {
  private readonly scheduler: Scheduler<Generation>
  private state: KvState
  /** Rows that left since the last pass: the batch must be re-packed. */
  private membershipChanged = false
  private looping: Promise<void> | null = null
  private stopping = false
  private steps = 0
  private lastBatchSize = 0

  constructor(
    private readonly forward: Forward,
    private readonly shape: KvShape,
    private readonly vocabSize: number,
    limits: SchedulerLimits,
    private readonly sink: EngineSink,
    private readonly now: () => number = Date.now,
  ) {
    this.scheduler = new Scheduler(limits)
    this.state = emptyKvState(shape)
  }

  submit(gen: Generation): void {
    if (!this.scheduler.enqueue(gen)) {
      this.sink.failed(gen.id, flatError('PREFIXD_OVERLOADED', 'too many requests are waiting; retry later'))
      return
    }
    this.kick()
  }

  cancel(id: number): void {
    // Only a running request holds rows in the batch; a waiting one leaves no hole.
    const wasRunning = this.scheduler.runningRequest(id) !== undefined
    if (this.scheduler.remove(id) && wasRunning) this.membershipChanged = true
  }

  stats(): LoopStats {
    return {
      running: this.scheduler.runningCount,
      waiting: this.scheduler.waitingCount,
      batchSize: this.scheduler.idle ? 0 : this.lastBatchSize,
      steps: this.steps,
    }
  }

  /**
   * Stops at the next step boundary: never inside a forward pass, since
   * tearing the thread down while ONNX Runtime runs aborts the process.
   */
  stop(): Promise<void> {
    this.stopping = true
    return this.looping ?? Promise.resolve()
  }

  private kick(): void {
    if (this.looping || this.stopping) return
    this.looping = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.loop())
  }

  private async loop(): Promise<void> {
    try {
      while (!this.scheduler.idle && !this.stopping) {
        await this.step()
        // Let cancellations and new requests arrive between forward passes.
        await new Promise<void>((resolve) => setImmediate(resolve))
      }
    } finally {
      this.looping = null
      this.sink.idle(this.stats())
    }
  }

  private expireDeadlines(): void {
    const now = this.now()
    const expired = [...this.scheduler.waitingRequests(), ...this.scheduler.runningRequests()].filter(
      (g) => g.params.deadline <= now,
    )
    for (const g of expired) {
      this.cancel(g.id)
      this.sink.failed(g.id, flatError('PREFIXD_DEADLINE_EXCEEDED', 'the request ran past its deadline'))
    }
  }

  async step(): Promise<void> {
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
    this.lastBatchSize = rows.length
    const out = await this.runGuarded(rows, () => this.forward.run(feed))
    if (!out) return
    appendStep(this.shape, this.state, out.stepKeys, out.stepValues)
    rows.forEach((g, r) => events.push(g.step(out.logits, r * this.vocabSize)))
  }

  /** The prefill pass of newly admitted rows; each samples its first token. */
  private async prefill(admitted: Generation[], events: TokenEvent[]): Promise<KvState | null> {
    const admittedAt = epochMs()
    const { feed, state } = buildPrefill(this.shape, admitted)
    const out = await this.runGuarded(admitted, () => this.forward.run(feed))
    if (!out) return null
    // Prompts are left-padded, so every row's last prompt token is the last column.
    admitted.forEach((g, r) => events.push({ ...g.prefillStep(out.logits, r * feed.seqLen * this.vocabSize, feed.seqLen), admittedAt }))
    return prefillState(this.shape, feed, state.rowIds, state.nextPosition, out.stepKeys, out.stepValues)
  }

  /** A failed forward pass fails the requests in it, not the engine. */
  private async runGuarded(rows: Generation[], run: () => Promise<ForwardResult>): Promise<ForwardResult | null> {
    try {
      return await run()
    } catch (err) {
      for (const g of rows) {
        this.cancel(g.id)
        this.sink.failed(g.id, flattenError(err))
      }
      return null
    }
  }

  private retireFinished(events: TokenEvent[]): void {
    for (const e of events) {
      if (e.finish && this.scheduler.remove(e.id)) this.membershipChanged = true
    }
  }
}
