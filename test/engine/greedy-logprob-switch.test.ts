/**
 * The graph's greedy logprob is computed only in passes where some row
 * reports it (graph/greedy-pick.ts, `greedy_logprob_wanted`): on stories260K,
 * a request that reports no logprob gets the tokens it gets when it does, and
 * one that reports them gets the same logprobs whether the rows beside it
 * report theirs or not. The references take the JavaScript sampler's path
 * (a top logprob asked for: the logits are fetched and the logprob computed
 * from them), so they do not depend on the graph's logprob. Each pass asks
 * for the logprob exactly while a row that reports it runs.
 */
import t from 'tap'
import { join } from 'node:path'
import { InProcessEngine, type PassRecord } from '../helpers/batching-inprocess.js'
import { LOGPROB_TOLERANCE } from '../helpers/batching-compare.js'
import { runMix, type Outcome, type RequestCase } from '../helpers/batching-requests.js'
import { readExpected, storiesModelDir } from '../helpers/shared-data.js'

// Room for every row in one prefill, so the rows share their passes.
const engine = await InProcessEngine.load(storiesModelDir, { maxBatchSize: 8, maxPrefillTokens: 1024 })
const prompts = readExpected(join(storiesModelDir, 'expected-base.json')).cases.map((c) => c.prompt_ids)

/** Each row greedy, without prefix, submitted at once. */
type Row = Pick<RequestCase, 'promptIds' | 'maxNewTokens' | 'topLogprobs'> & { reports: boolean }

/** Submits the rows at once; resolves with each row's tokens and the passes the mix ran. */
async function runRows(rows: Row[]): Promise<{ outcomes: Outcome[]; passes: PassRecord[] }> {
  const firstStep = engine.steps.length
  const outcomes = await runMix(engine, rows.map(({ reports, ...row }) => ({ ...row, prefixKeys: [], arrivalAfter: 0, logprobs: reports })))
  return { outcomes, passes: engine.steps.slice(firstStep).flatMap((s) => s.passes) }
}

const alone: Outcome[] = []
const referencePasses: PassRecord[] = []
for (const promptIds of prompts) {
  const { outcomes, passes } = await runRows([{ promptIds, reports: true, maxNewTokens: 12, topLogprobs: 1 }])
  alone.push(outcomes[0])
  referencePasses.push(...passes)
}

t.test('the references report finite logprobs, computed from the logits', async (t) => {
  t.ok(prompts.length >= 3, `${prompts.length} prompts`)
  t.ok(alone.every((o) => o.logprobs.every(Number.isFinite)))
  t.ok(referencePasses.every((p) => p.result.logits !== null), 'every reference pass fetched its logits')
})

t.test('no row reports a logprob: the same tokens, no logprob computed, no logits fetched', async (t) => {
  const { outcomes, passes } = await runRows(prompts.map((promptIds) => ({ promptIds, reports: false, maxNewTokens: 12 })))
  outcomes.forEach((o, i) => {
    t.same(o.ids, alone[i].ids, `prompt ${i}: the tokens it gets when it reports logprobs`)
    t.ok(o.logprobs.every(Number.isNaN), `prompt ${i}: no logprob reported`)
  })
  t.ok(passes.length >= 12, `${passes.length} passes`)
  t.ok(passes.every((p) => p.feed.greedyLogprobs === false), 'every pass skips the log-softmax')
  t.ok(passes.every((p) => p.result.logits === null), 'the soundness mark let every pick be used (no pass went back for its logits)')
})

t.test('rows that report beside rows that do not: their logprobs as alone; the logprob computed while one of them runs', async (t) => {
  // The reporting rows stop early, so the last passes run only rows that report nothing.
  const rows = prompts.map((promptIds, i) => ({ promptIds, reports: i % 2 === 0, maxNewTokens: i % 2 === 0 ? 4 : 12 }))
  t.ok(rows.filter((r) => r.reports).length >= 2 && rows.some((r) => !r.reports), 'rows of both kinds')
  const { outcomes, passes } = await runRows(rows)
  outcomes.forEach((o, i) => {
    const n = rows[i].maxNewTokens
    t.same(o.ids, alone[i].ids.slice(0, n), `prompt ${i}: the tokens alone`)
    t.equal(o.ids.length, n)
    if (!rows[i].reports) return t.ok(o.logprobs.every(Number.isNaN), `prompt ${i}: no logprob reported`)
    const worst = Math.max(...o.logprobs.map((x, j) => Math.abs(x - alone[i].logprobs[j])))
    t.ok(worst <= LOGPROB_TOLERANCE, `prompt ${i}: logprobs as alone (max |d| ${worst})`)
  })
  // Pass k (the prefill is pass 0) runs the reporting rows while they have tokens left to pick.
  passes.forEach((p, k) => t.equal(p.feed.greedyLogprobs, k < 4, `pass ${k}: the logprob ${k < 4 ? 'computed' : 'skipped'}`))
})
