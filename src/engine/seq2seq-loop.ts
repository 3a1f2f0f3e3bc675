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
 */
import { epochMs } from '../domain/clock.js'
import type { PrefixKV } from '../domain/prefix-kv.js'
import type { Generation } from './generation.js'
import type { TokenEvent } from './protocol.js'
import type { SchedulerLimits } from './scheduler.js'
import { StepLoop, type EngineSink } from './step-loop.js'
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

export class Seq2seqLoop extends StepLoop {
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

  override async step(): Promise<void> {
    this.expireDeadlines()
    const plan = this.scheduler.nextStep()
    const events: TokenEvent[] = []
    this.dropDeparted()
    // Everything the step needs is read now: a cancel can arrive while a forward pass runs.
    const members = this.cohorts.map((c) => c.rowIds.map((id) => this.scheduler.runningRequest(id)!))
    const sources = plan.admit.map((g) => this.sources.get(g.id)!)
    this.lastBatchSize = members.reduce((n, rows) => n + rows.length, 0)
    const stepped: Cohort[] = []
    for (const [i, cohort] of this.cohorts.entries()) {
      const next = await this.decode(cohort, members[i], members[i].map((g) => g.lastToken), events)
      if (next) stepped.push(next)
    }
    this.cohorts = stepped
    if (plan.admit.length > 0) await this.admit(plan.admit, sources, events)
    for (const e of events) if (e.finish) this.cancel(e.id)
    this.dropDeparted()
    this.cohorts = mergeByPastLength(this.opts.shape, this.cohorts)
    this.steps++
    if (events.length > 0) this.sink.tokens(events, this.stats())
  }

  private dropDeparted(): void {
    if (!this.membershipChanged) return
    const running = (id: number) => this.scheduler.runningRequest(id) !== undefined
    this.cohorts = this.cohorts.flatMap((c) => retain(this.opts.shape, c, running) ?? [])
    this.membershipChanged = false
  }

  /** One with-past call for a cohort; returns it advanced, or null if the call failed (its rows failed). */
  private async decode(cohort: Cohort, rows: Generation[], tokens: readonly number[], events: TokenEvent[], admittedAt?: number): Promise<Cohort | null> {
    const out = await this.runGuarded(rows, () => this.forward.step(cohort, tokens))
    if (!out) return null
    const V = this.opts.vocabSize
    rows.forEach((g, r) => this.sampleRow(g, () => g.step(out.logits, r * V), events, admittedAt))
    return advance(cohort, out.presentKeys, out.presentValues)
  }

  /**
   * Admission: encoder and first decoder pass for all new rows at once. Rows
   * without a prefix choose their first token from that pass; rows with one
   * start over their prefix, grouped by its length, and feed decoder_start.
   */
  private async admit(admitted: Generation[], sources: ReadonlyArray<readonly number[]>, events: TokenEvent[]): Promise<void> {
    const admittedAt = epochMs()
    const started = await this.runGuarded(admitted, async () => {
      const enc = await this.forward.encode(sources)
      return { enc, first: await this.forward.firstStep(enc, this.opts.decoderStartTokenId) }
    })
    if (!started) return
    const { enc, first } = started
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
    const plain: RowRef[] = []
    const byPrefixLength = new Map<number, RowRef[]>()
    const prefixes = admitted.map(pastContributions)
    admitted.forEach((g, row) => {
      if (prefixes[row].length === 0) {
        plain.push({ cohort: batch, row })
        events.push({ ...g.step(first.logits, row * this.opts.vocabSize), admittedAt })
      } else {
        const P = prefixes[row].reduce((n, p) => n + p.numVirtualTokens, 0)
        byPrefixLength.set(P, [...(byPrefixLength.get(P) ?? []), { cohort: batch, row }])
      }
    })
    const { shape } = this.opts
    if (plain.length === admitted.length) this.cohorts.push(batch)
    else if (plain.length > 0) this.cohorts.push(gather(shape, plain, plain.map((ref) => pastOf(ref, shape))))
    for (const refs of byPrefixLength.values()) {
      const cohort = gather(shape, refs, refs.map((ref) => prefixPast(prefixes[ref.row], shape)))
      const start = refs.map(() => this.opts.decoderStartTokenId)
      const next = await this.decode(cohort, refs.map((ref) => admitted[ref.row]), start, events, admittedAt)
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

