/**
 * Continuous batching must be invisible to each request: whatever else shares
 * its forward passes (other prefixes of other lengths, composed prefixes,
 * other prompt lengths, requests arriving mid-way and leaving early), a
 * request gets the tokens it would get alone, token for token, with logprobs
 * equal within 1e-4. Checked as fast-check properties with fixed seeds (a
 * failure replays and shrinks to a small mix) on the generated tiny llama and
 * gpt2 and on the real stories260K with its PEFT adapters; then seeds, stop
 * sequences, max_new_tokens, EOS, and that the batch is re-packed only when
 * its membership changes.
 */
import fc from 'fast-check'
import t from 'tap'
import { TextTokenizer } from '../../src/engine/tokenizer.js'
import { mixArb } from '../helpers/batching-arbitraries.js'
import { logprobDifferences, outcomeDifferences } from '../helpers/batching-compare.js'
import { expectEos, expectStopped, expectTruncated, expectationDifferences, type Expected } from '../helpers/batching-expect.js'
import type { SubmittedRequest } from '../../src/engine/engine-client.js'
import { InProcessEngine } from '../helpers/batching-inprocess.js'
import {
  generateTinyModel,
  randomPrefixes,
  pastKv,
  seededPrefix,
  startFixture,
  storiesPrefixes,
  storiesTokenId,
  storiesWithExtraEos,
  tempDir,
} from '../helpers/batching-models.js'
import { assertBatchingProperty, checkMix } from '../helpers/batching-property.js'
import { analyzeRepacks } from '../helpers/batching-repack.js'
import { paramsFor, runAlone, runEachAlone, runMix, type Outcome, type RequestCase } from '../helpers/batching-requests.js'
import { readExpected, storiesModelDir } from '../helpers/shared-data.js'
import { join } from 'node:path'

const RUNS = 12
const SEED = 20240501

const dir = await tempDir(t, 'batching')
const llamaDir = await generateTinyModel(dir, 'llama')
const gpt2Dir = await generateTinyModel(dir, 'gpt2')
const llama = await startFixture(t, 'llama tiny', llamaDir, randomPrefixes([1, 3, 8, 16]))
const gpt2 = await startFixture(t, 'gpt2 tiny', gpt2Dir, randomPrefixes([2, 5, 16]))
const stories = await startFixture(t, 'stories260K', storiesModelDir, storiesPrefixes)
const storiesText = await TextTokenizer.load(storiesModelDir, 1)
const storiesPrompts = readExpected(join(storiesModelDir, 'expected-base.json')).cases.map((c) => c.prompt_ids)
/** The completion text of ids generated after prompt p: decode(prompt + ids) - decode(prompt). */
const completionAfter = (p: number) => (ids: number[]) =>
  storiesText.decode([...storiesPrompts[p], ...ids]).slice(storiesText.decode(storiesPrompts[p]).length)
const PREFIX_CHOICES = [[], ['dog-max'], ['robot-benny'], ['robot-benny', 'dog-max']]

/** Every stories prompt under every prefix choice, greedy, alone, 40 tokens: the references for the end rules. */
const storiesFull = new Map<string, Outcome>()
const fullKey = (prompt: number, prefix: number) => `${prompt}/${prefix}`
for (let p = 0; p < storiesPrompts.length; p++) {
  for (let x = 0; x < PREFIX_CHOICES.length; x++) {
    const req = { promptIds: storiesPrompts[p], prefixKeys: PREFIX_CHOICES[x], maxNewTokens: 40, arrivalAfter: 0 }
    storiesFull.set(fullKey(p, x), await runAlone(stories.engine, req))
  }
}

t.test('batched equals alone: random greedy mixes', async (t) => {
  for (const [i, fixture] of [llama, gpt2, stories].entries()) {
    const report = await assertBatchingProperty(fixture, {}, { numRuns: RUNS, seed: SEED + i })
    t.ok(report.requests >= 2 * RUNS, `${fixture.name}: ${report.requests} requests, ${report.tokens} tokens; finishes ${JSON.stringify(report.reasons)}`)
  }
})

t.test('seeds: a sampled request gets the same tokens alone and in a busy batch', async (t) => {
  for (const [i, fixture] of [llama, stories].entries()) {
    const report = await assertBatchingProperty(fixture, { sampling: true }, { numRuns: 8, seed: SEED + 10 + i })
    t.ok(report.requests >= 16, `${fixture.name}: sampled and greedy mixes, ${report.requests} requests`)
  }

  const sampled = (seed: number): RequestCase => ({
    promptIds: storiesPrompts[0],
    prefixKeys: ['robot-benny'],
    maxNewTokens: 32,
    arrivalAfter: 7,
    sampling: { seed, temperature: 1, topK: 0, topP: 1 },
  })
  const alone = await runAlone(stories.engine, sampled(1234))
  t.same((await runAlone(stories.engine, sampled(1234))).ids, alone.ids, 'same seed alone twice: same tokens')
  t.notSame((await runAlone(stories.engine, sampled(1235))).ids, alone.ids, 'another seed samples other tokens (the check is not vacuous)')
  const busy: RequestCase[] = [
    { promptIds: storiesPrompts[1], prefixKeys: ['dog-max'], maxNewTokens: 20, arrivalAfter: 0 },
    { promptIds: storiesPrompts[2], prefixKeys: [], maxNewTokens: 40, arrivalAfter: 0, sampling: { seed: 1, temperature: 0.7, topK: 40, topP: 0.9 } },
    { promptIds: storiesPrompts[3], prefixKeys: ['robot-benny', 'dog-max'], maxNewTokens: 6, arrivalAfter: 0 },
    sampled(1234),
    { promptIds: storiesPrompts[0], prefixKeys: ['rand5'], maxNewTokens: 30, arrivalAfter: 12, sampling: { seed: 1234, temperature: 1.3, topK: 0, topP: 1 } },
  ]
  const [, , , inBatch] = await runMix(stories.engine, busy)
  t.same(outcomeDifferences('seed 1234 in a busy batch', inBatch, alone), [], 'seed 1234 in a busy batch: the tokens it sampled alone')
})

t.test('stop sequences end the request where the text completes them, keeping the stop text (TGI)', async (t) => {
  const stopArb = fc.record({
    prompt: fc.integer({ min: 0, max: storiesPrompts.length - 1 }),
    prefix: fc.integer({ min: 0, max: PREFIX_CHOICES.length - 1 }),
    // Stops cut from the reference text itself (so they occur), or one that never does.
    stops: fc.array(fc.oneof(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 8 })), fc.constant(null)), { minLength: 1, maxLength: 2 }),
    arrivalAfter: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 30 })),
  })
  let stopped = 0
  await fc.assert(
    fc.asyncProperty(fc.array(stopArb, { minLength: 1, maxLength: 5 }), async (cases) => {
      const reqs = cases.map((c): RequestCase => {
        const full = storiesFull.get(fullKey(c.prompt, c.prefix))!
        const stop = c.stops.map((s) => (s === null ? '#never#' : full.text.slice(s[0] % full.text.length, (s[0] % full.text.length) + s[1])))
        return { promptIds: storiesPrompts[c.prompt], prefixKeys: PREFIX_CHOICES[c.prefix], maxNewTokens: 40, arrivalAfter: c.arrivalAfter, stop }
      })
      const got = await runMix(stories.engine, reqs)
      const problems = cases.flatMap((c, i) => {
        const want = expectStopped(storiesFull.get(fullKey(c.prompt, c.prefix))!, reqs[i].stop!)
        if (want.reason === 'stop_sequence') stopped++
        return expectationDifferences(`request ${i} stop ${JSON.stringify(reqs[i].stop)}`, got[i], want)
      })
      if (problems.length > 0) throw new Error(problems.join('\n'))
    }),
    { numRuns: 10, seed: SEED + 20 },
  )
  t.ok(stopped >= 10, `${stopped} requests ended on a stop sequence`)
})

t.test('max_new_tokens: each request ends after exactly its own count, with the tokens of a longer run', async (t) => {
  const full = storiesFull.get(fullKey(1, 1))!
  const counts = [1, 2, 3, 5, 8, 13, 21, 40]
  const reqs = counts.map((m, i): RequestCase => ({ promptIds: storiesPrompts[1], prefixKeys: PREFIX_CHOICES[1], maxNewTokens: m, arrivalAfter: 3 * i }))
  const got = await runMix(stories.engine, reqs)
  counts.forEach((m, i) => {
    t.same(expectationDifferences(`max_new_tokens ${m}`, got[i], expectTruncated(full, m, completionAfter(1))), [], `max_new_tokens ${m}: the first ${m} tokens, finish length`)
    t.same(logprobDifferences(`max_new_tokens ${m}`, got[i].logprobs, full.logprobs), [], `max_new_tokens ${m}: logprobs of the longer run`)
  })
})

t.test('EOS ends a request in a batch as it does alone (stories260K with "." as an extra EOS id)', async (t) => {
  const period = await storiesTokenId('.')
  const eosModel = await startFixture(t, 'stories260K eos', await storiesWithExtraEos(dir, period), storiesPrefixes)
  t.same(eosModel.engine.spec.eosTokenIds, [2, period], 'the linked model folder widens EOS')
  const reqs: RequestCase[] = []
  const wants: Expected[] = []
  for (const [key, full] of storiesFull) {
    const [p, x] = key.split('/').map(Number)
    const want = expectEos(full, period, completionAfter(p))
    if (!want) continue
    reqs.push({ promptIds: storiesPrompts[p], prefixKeys: PREFIX_CHOICES[x], maxNewTokens: 40, arrivalAfter: 2 * reqs.length })
    wants.push(want)
  }
  t.ok(reqs.length >= 6, `${reqs.length} prompts reach "." within 40 tokens`)
  const alone = await runEachAlone(eosModel.engine, reqs)
  const batched = await runMix(eosModel.engine, reqs)
  reqs.forEach((_, i) => {
    t.same(expectationDifferences(`request ${i} alone`, alone[i], wants[i]), [], `request ${i} alone ends on its first "."`)
    t.same(expectationDifferences(`request ${i} batched`, batched[i], wants[i]), [], `request ${i} batched ends on its first "."`)
  })
})

t.test('the batch is re-packed exactly when its membership changes', async (t) => {
  const engine = await InProcessEngine.load(llamaDir)
  t.ok(engine.writesPresentInPlace, 'the default engine drives ONNX Runtime through its C API, present in place')
  const prefixes = new Map([1, 3, 8, 16].map((len, i) => [`rand${len}`, seededPrefix(engine.spec, len, 1000 + i)]))
  for (const [k, p] of prefixes) engine.putAdapter(k, pastKv(p))

  t.test('three requests admitted together and finishing together: one re-pack for nine decode passes', async (t) => {
    const from = engine.steps.length
    const reqs = [5, 9, 2].map((n, i): RequestCase => ({ promptIds: Array.from({ length: n }, (_, j) => 10 + j), prefixKeys: i === 0 ? [] : ['rand8'], maxNewTokens: 10, arrivalAfter: 0 }))
    const got = await runMix(engine, reqs)
    t.same(got.map((o) => o.reason), ['length', 'length', 'length'], 'all three run to max_new_tokens')
    const report = analyzeRepacks(engine.steps.slice(from), engine.requests)
    t.same(report.violations, [], 'no needless or missing re-pack')
    t.equal(report.decodes, 9, 'one prefill pass, then nine decode passes')
    t.equal(report.repacks, 1, 'one re-pack, when the prefilled rows joined')
  })

  // Regression (found by this file, fixed in 8b05537): EngineLoop.cancel()
  // used to mark the batch changed whenever Scheduler.remove() found the id,
  // including a request still waiting, so cancelling (or expiring) a request
  // that never ran re-packed the whole running batch for nothing.
  t.test('cancelling a waiting request does not re-pack the running batch', async (t) => {
    const small = await InProcessEngine.load(llamaDir, { maxBatchSize: 2 })
    const params = paramsFor({ maxNewTokens: 6 })
    let third: SubmittedRequest | undefined
    // Two run (batch of 2), the third waits; its client goes away during the first decode step's tokens.
    await new Promise<void>((resolve, reject) => {
      let left = 2
      for (const i of [0, 1]) {
        small.submit([10 + i, 11], [], params, {
          onToken: (e) => {
            if (small.steps.length === 2) third?.cancel()
            if (e.finish && --left === 0) resolve()
          },
          onError: reject,
        })
      }
      third = small.submit([12, 11], [], params, { onToken: () => {}, onError: reject })
    })
    const report = analyzeRepacks(small.steps, small.requests, small.cancels)
    t.ok(small.cancels.length === 1 && !small.steps.some((s) => s.events.some((e) => e.id === small.cancels[0].id)), 'the third request never ran')
    t.same(report.violations, [], 'no re-pack without a change of the running rows')
  })

  // Both ways of driving ONNX Runtime: the C API writing present in place (the default), and onnxruntime-node with a cache with room.
  const nodeEngine = await InProcessEngine.load(llamaDir, {}, undefined, 'node')
  for (const [k, p] of prefixes) nodeEngine.putAdapter(k, pastKv(p))
  for (const [binding, inProcess, seed] of [['C API', engine, SEED + 30], ['onnxruntime-node', nodeEngine, SEED + 31]] as const) {
    t.test(`random mixes, in-process through ${binding}: batched equals alone, and re-packs follow membership`, async (t) => {
      const totals = { decodes: 0, repacks: 0 }
      const target = { name: `llama tiny in-process, ${binding}`, engine: inProcess, prefixes }
      await fc.assert(
        fc.asyncProperty(mixArb({ vocabSize: inProcess.spec.vocabSize, prefixKeys: [...prefixes.keys()] }), async (mix) => {
          const from = inProcess.steps.length
          await checkMix(target, mix)
          const report = analyzeRepacks(inProcess.steps.slice(from), inProcess.requests, inProcess.cancels, from)
          if (report.violations.length > 0) throw new Error(report.violations.join('\n'))
          totals.decodes += report.decodes
          totals.repacks += report.repacks
        }),
        { numRuns: RUNS, seed },
      )
      t.ok(totals.repacks > 0 && totals.repacks < totals.decodes, `${totals.repacks} re-packs over ${totals.decodes} decode passes`)
    })
  }
})
