/**
 * The batching property on the families whose positions prefixd derives or
 * whose bias comes from the mask (test/fixtures/zoo), and on the generated
 * float16 and merged layouts: random mixes of prefixes of several lengths
 * (composed too), prompts of several lengths and staggered arrivals, every
 * request equal to itself alone, token for token.
 */
import t from 'tap'
import { join } from 'node:path'
import { randomPrefixes, startFixture } from '../helpers/batching-models.js'
import { assertBatchingProperty } from '../helpers/batching-property.js'
import { generatedModel } from '../helpers/tiny-model.js'
import { zoo } from '../helpers/zoo.js'

t.test('batched equals alone in random mixes: gemma, bloom, float16 and merged decoders', async (t) => {
  const fixtures = [
    await startFixture(t, 'gemma', join(zoo, 'gemma', 'model'), randomPrefixes([1, 4, 9])),
    await startFixture(t, 'bloom', join(zoo, 'bloom', 'model'), randomPrefixes([2, 6, 11])),
    await startFixture(t, 'llama float16', await generatedModel('llama', 'tiny', { dtype: 'float16' }), randomPrefixes([3, 7])),
    await startFixture(t, 'gpt2 merged', await generatedModel('gpt2', 'tiny', { merged: true }), randomPrefixes([2, 5])),
  ]
  for (const [i, fixture] of fixtures.entries()) {
    const report = await assertBatchingProperty(fixture, {}, { numRuns: 6, seed: 20261201 + i })
    t.ok(report.requests >= 12, `${fixture.name}: ${report.requests} requests, ${report.tokens} tokens compared`)
  }
})
