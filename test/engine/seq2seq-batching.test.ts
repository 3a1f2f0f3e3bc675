/**
 * "Batched equals alone" over encoder-decoder models: whatever shares its
 * decoder calls (prefixes of other lengths, composed prefixes, no prefix,
 * other source lengths, rows that joined steps earlier or later and cohorts
 * that merge when their past lengths meet, rows cancelled mid-way), a request
 * gets the tokens it gets alone, token for token, logprobs within 1e-4.
 * Same fast-check property as the decoder-only models (batching-property.ts),
 * on bart-toy and t5-toy with their real PEFT adapter (P = 8) and seeded
 * random prefixes of lengths 3 and 5.
 */
import t from 'tap'
import { loadPrefixFolder } from '../../src/prefixes/prefix-folder.js'
import type { AdapterContribution } from '../../src/domain/adapter-contribution.js'
import { pastKv, seededPrefix, startFixture } from '../helpers/batching-models.js'
import { assertBatchingProperty } from '../helpers/batching-property.js'
import { SEQ2SEQ_FIXTURES } from '../helpers/seq2seq-data.js'

const RUNS = 10
const SEED = 20261201

for (const [i, fx] of SEQ2SEQ_FIXTURES.entries()) {
  t.test(`${fx.name}: batched equals alone`, async (t) => {
    const target = await startFixture(t, fx.name, fx.modelDir, async (spec) => {
      const map = new Map<string, AdapterContribution>()
      map.set(fx.adapterName, (await loadPrefixFolder(fx.adapterDir, { maxFileBytes: 1 << 24 })).contribution)
      map.set('rand3', pastKv(seededPrefix(spec, 3, 31)))
      map.set('rand5', pastKv(seededPrefix(spec, 5, 53)))
      return map
    })
    const greedy = await assertBatchingProperty(target, {}, { numRuns: RUNS, seed: SEED + i })
    t.ok(greedy.requests >= 2 * RUNS, `greedy mixes: ${greedy.requests} requests, ${greedy.tokens} tokens; finishes ${JSON.stringify(greedy.reasons)}`)
    const sampled = await assertBatchingProperty(target, { sampling: true }, { numRuns: 6, seed: SEED + 10 + i })
    t.ok(sampled.requests >= 12, `sampled and greedy mixes: ${sampled.requests} requests`)
  })
}
