/**
 * What every engine step loop shares, whatever the model's architecture: the
 * scheduler and its budgets, starting and stopping the loop between forward
 * passes, deadlines, cancellation, the stats, and the rule that a failed
 * forward pass fails the requests in it, not the engine.
 *
 * One step has three halves, as in vLLM v1: schedule() picks the rows and
 * makes the plan, execute(plan) runs the model passes and does no
 * bookkeeping, update(plan, results) turns the results into token events,
 * failures, retirements and the next batch. Subclasses say what each half is
 * for their architecture (EngineLoop: decoder-only; Seq2seqLoop:
 * encoder-decoder).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { flatError, flattenError, type FlatError } from '../domain/error-table.js'
import type { Generation } from './generation.js'
import { rowFailure } from './row-failure.js'
import type { LoopStats, TokenEvent } from './protocol.js'
import { Scheduler, type SchedulerLimits } from './scheduler.js'

/** An engine with no running rows starts once no new request arrived for this long (or its admission window ends). */
const QUIET_SLICE_MS = 2

export interface EngineSink {
  tokens(events: TokenEvent[], stats: LoopStats): void
  failed(id: number, error: FlatError): void
  /** The loop went idle: the last requests finished or left. */
  idle(stats: LoopStats): void
}

/** What a model pass gave: its outputs, or the error that fails the rows in it. */
export type PassOutcome<T> = { ok: true; value: T } | { ok: false; error: unknown }

export abstract class StepLoop<Plan, Results> {
  protected readonly scheduler: Scheduler<Generation>
  /** Rows that left since the last pass: the batch must be re-packed. */
  protected membershipChanged = false
  protected steps = 0
  protected lastBatchSize = 0
  private looping: Promise<void> | null = null
  private stopping = false
  /** How long at most an idle loop waits for arrivals before its first pass, and the quiet slice that ends the wait (setAdmissionWindow). */
  private admission = { windowMs: 0, quietMs: QUIET_SLICE_MS }

  constructor(
    limits: SchedulerLimits,
    protected readonly sink: EngineSink,
    private readonly now: () => number = Date.now,
  ) {
    this.scheduler = new Scheduler(limits)
  }

  /** One step: every running row moves one token, newly admitted rows start. */
  async step(): Promise<void> {
    const plan = this.schedule()
    const results = await this.execute(plan)
    const events = this.update(plan, results)
    this.steps++
    if (events.length > 0) this.sink.tokens(events, this.stats())
  }

  /** Expires deadlines, admits, drops departed rows; reads every row the passes need (a cancel can arrive during one). */
  protected abstract schedule(): Plan
  /** The model passes of the plan, nothing else: no sampling, no scheduler changes, no sink. */
  protected abstract execute(plan: Plan): Promise<Results>
  /** Samples, fails, retires and re-packs: what the step does to the requests and the batch, in one place. */
  protected abstract update(plan: Plan, results: Results): TokenEvent[]

  /**
   * From now on, a loop with no running rows that gets a request waits while
   * others keep arriving, at most `ms` (ADMISSION_WAIT_MS), before its first
   * pass. Requests sent together reach the engine over several milliseconds,
   * each parsed and tokenized in turn on the HTTP thread (0.3-0.7 ms apart in
   * the bench, with pauses of several ms for its garbage collector); started
   * at the first, a burst of 16 was prefilled in three passes (2, 7, 7 rows)
   * while the first rows decoded alone, and each pass took the cores from the
   * HTTP thread still preparing the rest. A request arriving alone waits one
   * quiet slice. A loop with running rows never waits: newcomers join at its
   * next step. "No running rows" is checked before every step, not only when
   * the loop starts: a burst that arrives while the loop winds down the last
   * batch (its last step, a collection) is gathered too.
   */
  setAdmissionWindow(ms: number, quietMs = QUIET_SLICE_MS): void {
    this.admission = { windowMs: ms, quietMs }
  }

  /**
   * Resolves once no request arrived for a quiet slice, or the admission
   * window is over. Polls every millisecond and measures the quiet itself: a
   * timer of the slice's length may fire up to a millisecond early.
   */
  private async gatherArrivals(): Promise<void> {
    const { windowMs, quietMs } = this.admission
    const start = performance.now()
    let seen = this.scheduler.waitingCount
    let lastArrival = start
    for (;;) {
      const now = performance.now()
      if (this.scheduler.waitingCount !== seen) {
        seen = this.scheduler.waitingCount
        lastArrival = now
      } else if (now - lastArrival >= quietMs) {
        return
      }
      if (now - start >= windowMs) return
      await sleep(1)
    }
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

  /** Queues a request and starts the loop; false (and the request failed as overloaded) when the queue is full. */
  protected enqueue(gen: Generation): boolean {
    if (!this.scheduler.enqueue(gen)) {
      this.sink.failed(gen.id, flatError('PREFIXD_OVERLOADED', 'too many requests are waiting; retry later'))
      return false
    }
    this.kick()
    return true
  }

  private kick(): void {
    if (this.looping || this.stopping) return
    this.looping = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.loop())
  }

  private async loop(): Promise<void> {
    try {
      while (!this.scheduler.idle && !this.stopping) {
        if (this.admission.windowMs > 0 && this.scheduler.runningCount === 0) {
          await this.gatherArrivals()
          // Asked to stop while it waited: no pass starts.
          if (this.stopping) break
        }
        await this.step()
        // Let cancellations and new requests arrive between forward passes.
        await new Promise<void>((resolve) => setImmediate(resolve))
      }
    } finally {
      this.looping = null
      this.sink.idle(this.stats())
    }
  }

  protected expireDeadlines(): void {
    const now = this.now()
    const expired = [...this.scheduler.waitingRequests(), ...this.scheduler.runningRequests()].filter(
      (g) => g.params.deadline <= now,
    )
    for (const g of expired) {
      this.cancel(g.id)
      this.sink.failed(g.id, flatError('PREFIXD_DEADLINE_EXCEEDED', 'the request ran past its deadline'))
    }
  }

  /**
   * Samples one row. A row whose logits cannot be sampled (not finite: a
   * prefix with huge values overflows the model) ends that request alone; the
   * other rows of the batch carry on, and the row leaves at the next re-pack.
   */
  protected sampleRow(g: Generation, sample: () => TokenEvent, events: TokenEvent[], admittedAt?: number): void {
    let event: TokenEvent
    try {
      event = sample()
    } catch (err) {
      this.cancel(g.id)
      this.sink.failed(g.id, rowFailure(g, err))
      return
    }
    events.push(admittedAt === undefined ? event : { ...event, admittedAt })
  }

  /** Runs one model pass, keeping its error for update() instead of acting on it. */
  protected async attempt<T>(run: () => Promise<T>): Promise<PassOutcome<T>> {
    try {
      return { ok: true, value: await run() }
    } catch (error) {
      return { ok: false, error }
    }
  }

  /** A pass's outputs; a failed pass fails the requests in it, not the engine (null then). */
  protected passed<T>(rows: readonly Generation[], outcome: PassOutcome<T>): T | null {
    if (outcome.ok) return outcome.value
    for (const g of rows) {
      this.cancel(g.id)
      this.sink.failed(g.id, flattenError(outcome.error))
    }
    return null
  }
}
