/**
 * The step loop of an encoder-decoder model. Same contract as EngineLoop
 * (submit, cancel, stop, stats; tokens go to an EngineSink), same scheduler and
 * per-request Generation, different forward passes:
 * - newly admitted rows: ONE encoder pass and ONE first decoder pass for all
 *   of them (the latter gives each row's cross-attention keys/values, kept for
 *   the request's life); rows without a prefix take their first token from it;
 * - rows with a prefix start from the prefix as their self-attention past
 *   (PEFT's semantics) and feed decoder_start on top of it;
 * - every step, one with-past call per cohort (rows with equal past length,
 *   see seq2seq-cohort.ts): rows that joined at different times share a call whenever
 *   prefix length + tokens so far agree, and cohorts merge when they meet.
 * The step's halves are StepLoop's: schedule (admit, drop departed rows),
 * execute (the cohorts' calls, then the admission's passes), update (sample,
 * fail, retire, merge cohorts).
 */
import { epochMs } from '../domain/clock.js'
import type { PrefixKV } from '../domain/prefix-kv.js'
import type { Generation } from './generation.js'
import type { TokenEvent } from './protocol.js'
import type { SchedulerLimits } from './scheduler.js'
import { StepLoop, type EngineSink, type PassOutcome } from './step-loop.js'
import { advance, gather, mergeByPastLength, pastOf, prefixPast, retain, type Cohort, type RowRef, type Seq2seqShape } from './seq2seq-cohort.js'
import type { DecoderStep, EncodedSources, FirstStep } from './seq2seq-runner.js'

export interface Seq2seqForward {
  encode(sources: readonly (readonly number[])[]): Promise<EncodedSources>
  firstStep(enc: EncodedSources, startId: number): Promise<FirstStep>
  step(cohort: Cohort, tokens: readonly number[]): Promise<DecoderStep>
}

export interface Seq2seqLoopOptions {
  shape: Seq2seqShape
  vocabSize: number
  decoderStartTokenId: number
  limits: SchedulerLimits
}

/** A cohort's rows, in its row order, read when the step was scheduled. */
interface CohortRows {
  cohort: Cohort
  rows: Generation[]
}

interface Seq2seqPlan {
  /** One with-past call each. */
  cohorts: CohortRows[]
  admit: Generation[]
  /** The admitted rows' source ids, for the encoder. */
  sources: ReadonlyArray<readonly number[]>
}

/** The admission's passes: the shared first decoder pass, then one start over the prefix per prefix length. */
interface Admitted {
  first: FirstStep
  /** Every admitted row, its past from the first pass. */
  batch: Cohort
  /** Each admitted row's prefixes (none: it takes its first token from the first pass). */
  prefixes: PrefixKV[][]
  prefixStarts: (CohortRows & { outcome: PassOutcome<DecoderStep> })[]
}

interface Seq2seqResults {
  /** One outcome per planned cohort, in plan order. */
  stepped: PassOutcome<DecoderStep>[]
  admission: { admittedAt: number; outcome: PassOutcome<Admitted> } | null
}

export class Seq2seqLoop extends StepLoop<Seq2seqPlan, Seq2seqResults> {
  private readonly sources = new Map<number, readonly number[]>()
  private cohorts: Cohort[] = []

  constructor(
    private readonly forward: Seq2seqForward,
    private readonly opts: Seq2seqLoopOptions,
    sink: EngineSink,
    now: () => number = Date.now,
  ) {
    super(opts.limits, sink, now)
  }

  /** A request whose Generation starts from [decoder_start]; its source text goes to the encoder. */
  submit(gen: Generation, sourceIds: readonly number[]): void {
    this.sources.set(gen.id, sourceIds)
    if (!this.enqueue(gen)) this.sources.delete(gen.id)
  }

  override cancel(id: number): void {
    super.cancel(id)
    this.sources.delete(id)
  }

  protected override schedule(): Seq2seqPlan {
    this.expireDeadlines()
    const { admit } = this.scheduler.nextStep()
    this.dropDeparted()
    // Everything the step needs is read now: a cancel can arrive while a forward pass runs.
    const cohorts = this.cohorts.map((cohort) => ({ cohort, rows: cohort.rowIds.map((id) => this.scheduler.runningRequest(id)!) }))
    const sources = admit.map((g) => this.sources.get(g.id)!)
    this.lastBatchSize = cohorts.reduce((n, c) => n + c.rows.length, 0)
    return { cohorts, admit, sources }
  }

  protected override async execute(plan: Seq2seqPlan): Promise<Seq2seqResults> {
    const stepped: PassOutcome<DecoderStep>[] = []
    for (const { cohort, rows } of plan.cohorts) {
      stepped.push(await this.attempt(() => this.forward.step(cohort, rows.map((g) => g.lastToken))))
    }
    const admission = plan.admit.length > 0 ? await this.startAdmitted(plan.admit, plan.sources) : null
    return { stepped, admission }
  }

  protected override update(plan: Seq2seqPlan, results: Seq2seqResults): TokenEvent[] {
    const events: TokenEvent[] = []
    this.cohorts = plan.cohorts.flatMap(({ cohort, rows }, i) => this.sampleCohort(cohort, rows, results.stepped[i], events) ?? [])
    if (results.admission) this.admit(plan.admit, results.admission.admittedAt, results.admission.outcome, events)
    for (const e of events) if (e.finish) this.cancel(e.id)
    this.dropDeparted()
    this.cohorts = mergeByPastLength(this.opts.shape, this.cohorts)
    return events
  }

  private dropDeparted(): void {
    if (!this.membershipChanged) return
    const running = (id: number) => this.scheduler.runningRequest(id) !== undefined
    this.cohorts = this.cohorts.flatMap((c) => retain(this.opts.shape, c, running) ?? [])
    this.membershipChanged = false
  }

  /** Samples a cohort's rows from its with-past call; returns it advanced, or null if the call failed (its rows failed). */
  private sampleCohort(cohort: Cohort, rows: Generation[], outcome: PassOutcome<DecoderStep>, events: TokenEvent[], admittedAt?: number): Cohort | null {
    const out = this.passed(rows, outcome)
    if (!out) return null
    const V = this.opts.vocabSize
    rows.forEach((g, r) => this.sampleRow(g, () => g.step(out.logits, r * V), events, admittedAt))
    return advance(cohort, out.presentKeys, out.presentValues)
  }

  /**
   * Admission's passes: encoder and first decoder pass for all new rows at
   * once; rows with a prefix then start over it, grouped by its length, and
   * feed decoder_start.
   */
  private async startAdmitted(admitted: Generation[], sources: ReadonlyArray<readonly number[]>): Promise<NonNullable<Seq2seqResults['admission']>> {
    const admittedAt = epochMs()
    const started = await this.attempt(async () => {
      const enc = await this.forward.encode(sources)
      return { enc, first: await this.forward.firstStep(enc, this.opts.decoderStartTokenId) }
    })
    if (!started.ok) return { admittedAt, outcome: started }
    const { enc, first } = started.value
    const batch: Cohort = {
      rowIds: admitted.map((g) => g.id),
      pastLen: 1,
      selfKeys: first.selfKeys,
      selfValues: first.selfValues,
      crossKeys: first.crossKeys,
      crossValues: first.crossValues,
      encoderHidden: enc.hidden,
      encoderMask: enc.mask,
      sourceLen: enc.sourceLen,
    }
    const prefixes = admitted.map(pastContributions)
    const byPrefixLength = new Map<number, RowRef[]>()
    admitted.forEach((_, row) => {
      if (prefixes[row].length === 0) return
      const P = prefixes[row].reduce((n, p) => n + p.numVirtualTokens, 0)
      byPrefixLength.set(P, [...(byPrefixLength.get(P) ?? []), { cohort: batch, row }])
    })
    const { shape } = this.opts
    const prefixStarts: Admitted['prefixStarts'] = []
    for (const refs of byPrefixLength.values()) {
      const cohort = gather(shape, refs, refs.map((ref) => prefixPast(prefixes[ref.row], shape)))
      const start = refs.map(() => this.opts.decoderStartTokenId)
      const outcome = await this.attempt(() => this.forward.step(cohort, start))
      prefixStarts.push({ cohort, rows: refs.map((ref) => admitted[ref.row]), outcome })
    }
    return { admittedAt, outcome: { ok: true, value: { first, batch, prefixes, prefixStarts } } }
  }

  /**
   * The admitted rows join: rows without a prefix choose their first token
   * from the first pass, rows with one from their start over it.
   */
  private admit(admitted: Generation[], admittedAt: number, outcome: PassOutcome<Admitted>, events: TokenEvent[]): void {
    const started = this.passed(admitted, outcome)
    if (!started) return
    const { first, batch, prefixes, prefixStarts } = started
    const plain: RowRef[] = []
    admitted.forEach((g, row) => {
      if (prefixes[row].length > 0) return
      plain.push({ cohort: batch, row })
      // Guarded like every other sampling: a row that cannot be sampled ends alone, and its cohort drops it at the next schedule.
      this.sampleRow(g, () => g.step(first.logits, row * this.opts.vocabSize), events, admittedAt)
    })
    const { shape } = this.opts
    if (plain.length === admitted.length) this.cohorts.push(batch)
    else if (plain.length > 0) this.cohorts.push(gather(shape, plain, plain.map((ref) => pastOf(ref, shape))))
    for (const { cohort, rows, outcome: prefixOutcome } of prefixStarts) {
      const next = this.sampleCohort(cohort, rows, prefixOutcome, events, admittedAt)
      if (next) this.cohorts.push(next)
    }
  }
}

/** A row's prefixes: encoder-decoder models take past key/values only (the engine refuses other contributions at submit). */
export function pastContributions(g: Pick<Generation, 'adapters'>): PrefixKV[] {
  return g.adapters.map((a) => {
    if (a.kind !== 'past_kv') throw new TypeError(`an encoder-decoder model takes past_kv adapters, not ${a.kind}`)
    return a.prefix
  })
}

