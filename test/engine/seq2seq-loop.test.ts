/**
 * The encoder-decoder step loop in the test's own thread, on t5-toy: a cancel
 * that arrives while a forward pass runs (as it does from the HTTP thread) is
 * absorbed at the next step boundary, never failing the step or the other
 * rows; and cohorts by past length: rows admitted at different steps run in
 * separate decoder calls, rows whose past lengths meet share one; and a
 * failed with-past call fails its cohort's rows only, while the rows admitted
 * in the same step start and finish as transformers does.
 */
import t from 'tap'
import type { EngineSink } from '../../src/engine/engine-loop.js'
import { Generation } from '../../src/engine/generation.js'
import type { TokenEvent } from '../../src/engine/protocol.js'
import { Seq2seqLoop, type Seq2seqForward } from '../../src/engine/seq2seq-loop.js'
import { loadSeq2seqModel } from '../../src/engine/seq2seq-model.js'
import { Seq2seqRunner } from '../../src/engine/seq2seq-runner.js'
import { loadPrefixFolder } from '../../src/prefixes/prefix-folder.js'
import { greedyParams } from '../helpers/engine-params.js'
import { SEQ2SEQ_FIXTURES } from '../helpers/seq2seq-data.js'

const fx = SEQ2SEQ_FIXTURES.find((f) => f.name === 't5-toy')!
const model = await loadSeq2seqModel(fx.modelDir, { executionProvider: 'cpu', intraOpThreads: 1 })
const { spec, tokenizer } = model
const shape = { numLayers: spec.numLayers, numHeads: spec.numKvHeads, headDim: spec.headDim, hiddenSize: spec.hiddenSize }
const runner = new Seq2seqRunner(model.sessions, shape)
const adapter = (await loadPrefixFolder(fx.adapterDir, { maxFileBytes: 1 << 20 })).contribution
const LIMITS = { maxBatchSize: 8, maxBatchTokens: 4096, maxPrefillTokens: 4096, maxWaiting: 8 }

interface Harness {
  loop: Seq2seqLoop
  tokens: Map<number, number[]>
  finished: Set<number>
  /** Rows of every with-past decoder call, in order. */
  calls: number[][]
  /** Rows of every encoder call. */
  encoded: number[]
  idle: Promise<void>
}

function harness(
  onStep: (rows: number[], loop: Seq2seqLoop) => void = () => {},
  onTokens: (events: TokenEvent[], h: Harness) => void = () => {},
  onFailed: (id: number, message: string) => void = (id, message) => t.fail(`request ${id} failed: ${message}`),
): Harness {
  let loop: Seq2seqLoop
  let resolveIdle!: () => void
  const h = { tokens: new Map<number, number[]>(), finished: new Set<number>(), calls: [] as number[][], encoded: [] as number[], idle: new Promise<void>((r) => (resolveIdle = r)) } as Harness
  const forward: Seq2seqForward = {
    encode: (s) => (h.encoded.push(s.length), runner.encode(s)),
    firstStep: (e, start) => runner.firstStep(e, start),
    step: (cohort, tokens) => {
      h.calls.push([...cohort.rowIds])
      onStep(cohort.rowIds, loop)
      return runner.step(cohort, tokens)
    },
  }
  const sink: EngineSink = {
    tokens: (events) => {
      for (const e of events) {
        h.tokens.set(e.id, [...(h.tokens.get(e.id) ?? []), e.token.id])
        if (e.finish) h.finished.add(e.id)
      }
      onTokens(events, h)
    },
    failed: (id, err) => onFailed(id, err.message),
    idle: () => resolveIdle(),
  }
  loop = new Seq2seqLoop(forward, { shape, vocabSize: spec.vocabSize, decoderStartTokenId: spec.decoderStartTokenId!, limits: LIMITS }, sink)
  h.loop = loop
  return h
}

const generation = (id: number, withPrefix: boolean, maxNew = 24) =>
  new Generation(id, [spec.decoderStartTokenId!], withPrefix ? [adapter] : [], greedyParams(maxNew), spec.vocabSize, new Set(spec.eosTokenIds), tokenizer)

t.test('a cancel during a forward pass leaves the step and the other rows whole', async (t) => {
  const [a, b] = [fx.base.cases[0], fx.adapter.cases[1]]
  let cancelled = false
  const h = harness(
    (rows, loop) => {
      // While request 1's cohort runs, request 2 (in another cohort) is cancelled.
      if (!cancelled && rows.includes(1) && h.tokens.has(2)) {
        cancelled = true
        loop.cancel(2)
      }
    },
    (_events, h) => {
      if (!h.tokens.has(2) && h.tokens.get(1)?.length === 1) h.loop.submit(generation(2, true), b.source_ids)
    },
  )
  h.loop.submit(generation(1, false), a.source_ids)
  await h.idle
  t.ok(cancelled, 'the cancel arrived mid-step')
  t.same(h.tokens.get(1), a.generated_ids, 'the other request still equals transformers')
  t.notOk(h.finished.has(2), 'the cancelled request never finishes')
  t.ok(h.tokens.get(2)!.length < b.generated_ids.length)
})

t.test('cohorts: separate calls for different past lengths, one call once they meet', async (t) => {
  const [a, b] = [fx.base.cases[2], fx.adapter.cases[3]]
  const h = harness()
  // Request 2 (P = 8) admitted with request 1 (P = 0): past lengths 9 and 1 after the first step.
  h.loop.submit(generation(1, false), a.source_ids)
  h.loop.submit(generation(2, true), b.source_ids)
  await h.idle
  t.same(h.tokens.get(1), a.generated_ids)
  t.same(h.tokens.get(2), b.generated_ids)
  t.ok(h.calls.every((rows) => rows.length === 1), 'never one call for both: their past lengths never meet')
  t.same(h.encoded, [2], 'one encoder call for the two rows admitted together')

  // Request 6 (P = 8) admitted 8 steps after request 5 (P = 0): both pasts are 9 long after that step.
  const meeting = harness(undefined, (_events, h) => {
    if (h.tokens.get(5)?.length === 8 && !h.tokens.has(6)) h.loop.submit(generation(6, true), b.source_ids)
  })
  meeting.loop.submit(generation(5, false), a.source_ids)
  await meeting.idle
  t.ok(a.generated_ids.length > 10, 'long enough to meet')
  t.ok(meeting.calls.some((rows) => rows.includes(5) && rows.includes(6)), 'one call once their past lengths meet')
  t.same(meeting.tokens.get(5), a.generated_ids)
  t.same(meeting.tokens.get(6), b.generated_ids)

  const together = harness()
  together.loop.submit(generation(3, true), a.source_ids)
  together.loop.submit(generation(4, true), b.source_ids)
  await together.idle
  t.ok(together.calls.some((rows) => rows.length === 2), 'same prefix length, admitted together: shared calls')
  t.same(together.tokens.get(4), b.generated_ids)
})

t.test("a failed cohort call fails that cohort's rows; the rows admitted in the same step carry on", async (t) => {
  const [a, b] = [fx.base.cases[0], fx.adapter.cases[1]]
  const log: string[] = []
  let failNextCallOf1 = false
  const h = harness(
    (rows) => {
      if (!failNextCallOf1 || !rows.includes(1)) return
      failNextCallOf1 = false
      throw new Error('cohort call refused')
    },
    (events, h) => {
      log.push(...events.map((e) => `token ${e.id}`))
      if (h.tokens.has(2) || h.tokens.get(1)?.length !== 1) return
      // The next step runs request 1's cohort and admits request 2 (a prefix: its own start call).
      failNextCallOf1 = true
      h.loop.submit(generation(2, true), b.source_ids)
    },
    (id, message) => log.push(`failed ${id}: ${message}`),
  )
  h.loop.submit(generation(1, false), a.source_ids)
  await h.idle
  t.same(h.tokens.get(1), a.generated_ids.slice(0, 1), 'request 1 gets nothing after its failed call')
  t.same(log.slice(0, 3), ['token 1', 'failed 1: cohort call refused', 'token 2'], 'the failure is reported before the tokens of the same step')
  t.same(h.tokens.get(2), b.generated_ids, 'request 2, admitted in that step, still equals transformers')
  t.ok(h.finished.has(2))
})
