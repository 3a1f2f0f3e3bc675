/**
 * Prompt tuning and P-tuning in the engine, against PEFT's own outputs on the
 * real stories260K adapters: virtual tokens before BOS, mask over them,
 * positions from the first virtual token. Alone, then in batches that mix
 * every kind (prompt tuning, P-tuning, a prefix, a prompt-tuning adapter
 * composed with a prefix, no adapter) in the same forward passes.
 */
import { join } from 'node:path'
import t from 'tap'
import type { AdapterContribution } from '../../src/domain/adapter-contribution.js'
import { loadPrefixFolder } from '../../src/prefixes/prefix-folder.js'
import { outcomeDifferences } from '../helpers/batching-compare.js'
import { fetchedLogits } from '../../src/engine/forward-runner.js'
import { InProcessEngine } from '../helpers/batching-inprocess.js'
import { assertBatchingProperty, checkMix } from '../helpers/batching-property.js'
import { runAlone, runMix, type RequestCase } from '../helpers/batching-requests.js'
import { closeness } from '../helpers/reference-compare.js'
import { loadPromptAdapter, PROMPT_ADAPTERS } from '../helpers/prompt-adapters.js'
import { readExpected, storiesModelDir, storiesPrefixesDir } from '../helpers/shared-data.js'

// Room for a whole mix in one prefill pass, so a mix's rows share every forward.
// Prefills also fetch their logits, so the last prompt position can be compared with PEFT's;
// the loop still picks from the graph's greedy outputs, and decode passes are left as the loop asks.
const engine = await InProcessEngine.load(storiesModelDir, { maxBatchSize: 8, maxPrefillTokens: 1024 }, (forward) => ({
  ...forward,
  run: (feed) => forward.run({ ...feed, fetchLogits: feed.fetchLogits || feed.seqLen > 1 }),
}))
const vocab = engine.spec.vocabSize
const adapters = new Map<string, AdapterContribution>()
const expected = new Map<string, ReturnType<typeof readExpected>>()
for (const name of PROMPT_ADAPTERS) {
  const a = await loadPromptAdapter(name)
  adapters.set(name, a.contribution)
  expected.set(name, a.expected)
}
const dogMax = await loadPrefixFolder(join(storiesPrefixesDir, 'dog-max'), { maxFileBytes: 1 << 20 })
adapters.set('dog-max', dogMax.contribution)
expected.set('dog-max', readExpected(join(storiesPrefixesDir, 'dog-max', 'expected.json')))
for (const [key, a] of adapters) engine.putAdapter(key, a)

t.test('the loader reads both PEFT types as 8 virtual tokens of the model width', async (t) => {
  for (const name of PROMPT_ADAPTERS) {
    const a = await loadPromptAdapter(name)
    t.equal(a.contribution.kind, 'input_embeds', name)
    if (a.contribution.kind === 'input_embeds') t.same([a.contribution.embeds.numVirtualTokens, a.contribution.embeds.hiddenSize], [8, engine.spec.hiddenSize])
  }
  t.same((await Promise.all(PROMPT_ADAPTERS.map(loadPromptAdapter))).map((a) => a.kind), ['prompt_tuning', 'p_tuning'])
})

t.test('alone: greedy ids equal PEFT on every prompt, and the first logits match', async (t) => {
  for (const name of PROMPT_ADAPTERS) {
    const want = expected.get(name)!
    for (const c of want.cases) {
      const from = engine.steps.length
      const got = await runAlone(engine, { promptIds: c.prompt_ids, prefixKeys: [name], maxNewTokens: c.generated_ids.length, arrivalAfter: 0 })
      t.same(got.ids, c.generated_ids, `${name}: "${c.prompt}"`)
      if (c.prompt_ids.join() !== want.last_prompt_position_logits.prompt_ids.join()) continue
      // The prefill pass: one row, left-padded to nothing, so its last column is the last prompt token.
      const prefill = engine.steps[from].passes[0]
      t.equal(prefill.feed.seqLen, 8 + c.prompt_ids.length, 'the virtual tokens are part of the sequence')
      const positions = prefill.result.positions
      const row = fetchedLogits(prefill.result).subarray((positions - 1) * vocab, positions * vocab)
      const close = closeness(row, want.last_prompt_position_logits.values)
      t.ok(close.maxDiff < 1e-4, `${name}: last prompt position logits within 1e-4 of PEFT (max |d| ${close.maxDiff})`)
    }
  }
})

t.test('one batch mixing every kind: each row gets exactly what it gets alone, and PEFT ids', async (t) => {
  const prompts = expected.get('pt-cat-luna')!.cases
  const choices = [['pt-cat-luna'], ['ptune-king-leo'], ['dog-max'], ['pt-cat-luna', 'dog-max'], ['dog-max', 'ptune-king-leo'], []]
  const mix: RequestCase[] = choices.map((keys, i) => ({ promptIds: prompts[i % prompts.length].prompt_ids, prefixKeys: keys, maxNewTokens: 24, arrivalAfter: 0 }))
  const from = engine.steps.length
  const batched = await runMix(engine, mix)
  const prefill = engine.steps[from].passes[0].feed
  t.equal(prefill.batch, choices.length, 'all six rows share the prefill pass')
  const dogMaxTokens = dogMax.contribution.kind === 'past_kv' ? dogMax.contribution.prefix.numVirtualTokens : -1
  t.ok(prefill.inputsEmbeds !== null && prefill.pastLen === dogMaxTokens, 'the pass carries virtual-token embeddings and prefix past together')
  for (const [i, keys] of choices.entries()) {
    const alone = await runAlone(engine, mix[i])
    t.same(outcomeDifferences(`row ${i} [${keys.join('+')}]`, batched[i], alone), [], `row ${i} [${keys.join('+') || 'base'}] batched equals alone`)
    if (keys.length === 1) {
      const c = expected.get(keys[0])!.cases.find((x) => x.prompt_ids.join() === mix[i].promptIds.join())!
      t.same(batched[i].ids, c.generated_ids.slice(0, 24), `row ${i} (${keys[0]}) has PEFT's ids`)
    }
  }
  await checkMix({ name: 'stories260K, every kind', engine, prefixes: adapters }, mix.map((r, i) => ({ ...r, arrivalAfter: i * 3 })))
})

t.test('batched equals alone: random mixes of every kind, composed and staggered', async (t) => {
  const report = await assertBatchingProperty({ name: 'stories260K, every kind', engine, prefixes: adapters }, {}, { numRuns: 10, seed: 1616 })
  t.ok(report.requests >= 20, `${report.requests} requests, ${report.tokens} tokens compared`)
  const sampled = await assertBatchingProperty({ name: 'stories260K, every kind, sampled', engine, prefixes: adapters }, { sampling: true }, { numRuns: 6, seed: 1617 })
  t.ok(sampled.requests >= 12, `sampled and greedy: ${sampled.requests} requests, ${sampled.tokens} tokens compared`)
})
