/**
 * The engine's step loop for decoder-only models. Each step:
 * - schedule: expire deadlines, admit, re-pack the batch if rows left;
 * - execute: one decode pass for the rows already running, then one prefill
 *   pass for the newly admitted rows;
 * - update: append the decode pass's keys/values, sample every row (the
 *   decoded first, then the admitted, each taking its first token), retire
 *   the finished, merge the new rows into the running batch.
 * Runs inside the worker; everything model-specific sits behind the
 * ForwardRunner, so this loop is the same for every model.
 */
import { buildDecode, buildPrefill, type ForwardFeed } from './batch/forward-feed.js'
import { adoptPresent, appendStep, compact, emptyKvState, packedAsCompact, prefillState, roomFor, withRoom, type KvShape, type KvState } from './batch/kv-state.js'
import { epochMs } from '../domain/clock.js'
import type { ForwardResult } from './forward-runner.js'
import type { Generation } from './generation.js'
import type { GraphPick } from './sampling/sampler.js'
import type { TokenEvent } from './protocol.js'
import type { SchedulerLimits } from './scheduler.js'
import { StepLoop, type EngineSink, type PassOutcome } from './step-loop.js'

export interface Forward {
  run(feed: ReturnType<typeof buildDecode>): Promise<ForwardResult>
  /** Decode passes write the whole present in place (ForwardRunner): the cache then keeps no free columns. */
  readonly writesPresentInPlace?: boolean
}

export type { EngineSink } from './step-loop.js'

interface DecoderPlan {
  /** The running batch's rows, in its row order: they decode. */
  decoding: Generation[]
  /** Newly admitted: they prefill. */
  admit: Generation[]
}

/** What buildPrefill says the prefill's outputs will describe. */
type PrefillPlanState = ReturnType<typeof buildPrefill>['state']

interface DecoderResults {
  decode: PassOutcome<ForwardResult> | null
  prefill: { admittedAt: number; feed: ForwardFeed; state: PrefillPlanState; outcome: PassOutcome<ForwardResult> } | null
}

export class EngineLoop extends StepLoop<DecoderPlan, DecoderResults> {
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
    this.room = forward.writesPresentInPlace ? () => 0 : roomFor
  }

  /** Free columns a re-packed cache gets: none when decode passes write present in place (they grow it by one). */
  private readonly room: (length: number) => number

  /** Whether decode passes write the whole present in place (the cache then keeps no free columns). */
  get writesPresentInPlace(): boolean {
    return this.forward.writesPresentInPlace === true
  }

  submit(gen: Generation): void {
    this.enqueue(gen)
  }

  protected override schedule(): DecoderPlan {
    this.expireDeadlines()
    const { admit } = this.scheduler.nextStep()
    // Rows that finished or were cancelled since the last pass leave here.
    if (this.membershipChanged) this.repack([this.state])
    const decoding = this.state.rowIds.map((id) => this.scheduler.runningRequest(id)!)
    if (decoding.length > 0) this.lastBatchSize = decoding.length
    return { decoding, admit }
  }

  protected override async execute(plan: DecoderPlan): Promise<DecoderResults> {
    let decode: DecoderResults['decode'] = null
    if (plan.decoding.length > 0) {
      // A free column for the position this pass appends (re-packed with spare room only when full),
      // unless the pass writes past + its column into a new place itself.
      if (!this.forward.writesPresentInPlace) this.state = withRoom(this.shape, this.state)
      const feed = buildDecode(this.state, plan.decoding.map((g) => g.lastToken))
      feed.presentInPlace = this.forward.writesPresentInPlace
      feed.loraRows = plan.decoding.map((g) => g.lora)
      feed.fetchLogits = plan.decoding.some((g) => g.needsLogits)
      feed.greedyLogprobs = plan.decoding.some((g) => g.reportsLogprob)
      decode = await this.attempt(() => this.forward.run(feed))
    }
    let prefill: DecoderResults['prefill'] = null
    if (plan.admit.length > 0) {
      const admittedAt = epochMs()
      const { feed, state } = buildPrefill(this.shape, plan.admit)
      feed.loraRows = plan.admit.map((g) => g.lora)
      // Only the last position picks the first token; scoring a prompt needs every position's logits.
      const scoring = plan.admit.some((g) => g.scoresPrompt)
      feed.logitsToKeep = scoring ? feed.seqLen : 1
      feed.fetchLogits = scoring || plan.admit.some((g) => g.needsLogits)
      feed.greedyLogprobs = plan.admit.some((g) => g.reportsLogprob)
      prefill = { admittedAt, feed, state, outcome: await this.attempt(() => this.forward.run(feed)) }
    }
    return { decode, prefill }
  }

  protected override update(plan: DecoderPlan, results: DecoderResults): TokenEvent[] {
    const events: TokenEvent[] = []
    const decoded = results.decode && this.passed(plan.decoding, results.decode)
    if (decoded) {
      if (decoded.present) adoptPresent(this.state, decoded.present.keys, decoded.present.values)
      else appendStep(this.shape, this.state, decoded.stepKeys, decoded.stepValues)
      plan.decoding.forEach((g, r) => this.sampleRow(g, () => g.step(decoded.logits, r * this.vocabSize, graphPick(decoded, r)), events))
    }
    const prefilled = results.prefill && this.passed(plan.admit, results.prefill.outcome)
    if (results.prefill && prefilled) {
      const { admittedAt } = results.prefill
      // Prompts are left-padded, so every row's last prompt token is the last column.
      const positions = prefilled.positions
      plan.admit.forEach((g, r) =>
        this.sampleRow(
          g,
          () => g.prefillStep(prefilled.logits, r * positions * this.vocabSize, positions, graphPick(prefilled, r * positions + positions - 1)),
          events,
          admittedAt,
        ),
      )
    }
    this.retireFinished(events)
    if (results.prefill && prefilled) this.join(results.prefill.feed, results.prefill.state, prefilled)
    return events
  }

  /**
   * Newly prefilled rows join the running batch: one re-pack per change. When
   * no row is running (an idle engine's first pass) and the prefill left its
   * rows as a re-pack would, its state is the batch, room added: the cache
   * is not copied twice.
   */
  private join(feed: ForwardFeed, state: PrefillPlanState, prefilled: ForwardResult): void {
    const running = (id: number) => this.scheduler.runningRequest(id) !== undefined
    const total = feed.pastLen + feed.seqLen
    const alone = !this.state.rowIds.some(running) && state.rowIds.every(running) && packedAsCompact(feed.attentionMask, feed.batch, total)
    const added = prefillState(this.shape, feed, state.rowIds, state.nextPosition, prefilled.stepKeys, prefilled.stepValues, alone ? this.room(total) : 0)
    if (!alone) return this.repack([this.state, added])
    this.state = added
    this.membershipChanged = false
  }

  private repack(states: KvState[]): void {
    const rows = states.flatMap((state) =>
      state.rowIds.map((id, row) => ({ state, row, id })).filter((x) => this.scheduler.runningRequest(x.id)),
    )
    this.state = compact(this.shape, rows, this.room)
    this.membershipChanged = false
  }

  private retireFinished(events: TokenEvent[]): void {
    for (const e of events) {
      if (e.finish && this.scheduler.remove(e.id)) this.membershipChanged = true
    }
  }
}

/** The graph's greedy pick at one [row, position] index of a pass, when the graph makes one. */
function graphPick(result: ForwardResult, index: number): GraphPick | undefined {
  const greedy = result.greedy
  return greedy === null ? undefined : { tokenId: Number(greedy.tokens[index]), logprob: greedy.logprobs[index] }
}
