/**
 * Encoder-decoder models through the engine worker: greedy ids equal
 * transformers' (base) and PEFT's (SEQ_2_SEQ_LM prefix adapters) for bart-toy
 * (merged decoder) and t5-toy (split decoders), one request at a time and all
 * at once (prefix length 8 and 0 side by side, sources of different lengths).
 */
import t, { type Test } from 'tap'
import { EngineClient } from '../../src/engine/engine-client.js'
import type { GenerationParams, TokenEvent } from '../../src/engine/protocol.js'
import { loadPrefixFolder } from '../../src/prefixes/prefix-folder.js'
import { engineOptions } from '../helpers/batching-models.js'
import { greedyParams } from '../helpers/engine-params.js'
import { SEQ2SEQ_FIXTURES, type Seq2seqCase } from '../helpers/seq2seq-data.js'

/** PEFT's generate ran with max_new_tokens 24. */
const MAX_NEW = 24

function generate(engine: EngineClient, sourceIds: number[], prefixKeys: string[], params: GenerationParams) {
  return new Promise<TokenEvent[]>((resolve, reject) => {
    const events: TokenEvent[] = []
    engine.submit(sourceIds, prefixKeys, params, {
      onToken: (e) => {
        events.push(e)
        if (e.finish) resolve(events)
      },
      onError: reject,
    })
  })
}

for (const fx of SEQ2SEQ_FIXTURES) {
  t.test(`${fx.name} through the engine worker`, async (t) => {
    const engine = await EngineClient.start(engineOptions(fx.modelDir, { maxBatchSize: 16, maxPrefillTokens: 4096 }))
    t.teardown(() => engine.close())
    t.equal(engine.spec.architecture, 'encoder-decoder')
    t.equal(engine.spec.numLayers, 2)
    const { contribution, architecture } = await loadPrefixFolder(fx.adapterDir, { maxFileBytes: 1 << 24 })
    t.equal(architecture, 'encoder-decoder')
    t.same([...engine.accepts], ['past_kv'], 'prefixes only')
    engine.putAdapter(fx.adapterName, contribution)

    const run = (c: Seq2seqCase, keys: string[]) => generate(engine, c.source_ids, keys, greedyParams(MAX_NEW))
    const check = (t: Test, events: TokenEvent[], c: Seq2seqCase, what: string) => {
      t.same(events.map((e) => e.token.id), c.generated_ids, `${what}: ${c.source}`)
      t.equal(events.at(-1)!.finish!.generatedText, c.generated_text, `${what} text: ${c.source}`)
      t.equal(events.at(-1)!.finish!.reason, 'eos_token')
    }

    t.test('base model alone equals transformers greedy', async (t) => {
      for (const c of fx.base.cases) check(t, await run(c, []), c, 'base')
    })
    t.test('PEFT adapter alone equals PEFT greedy', async (t) => {
      for (const c of fx.adapter.cases) check(t, await run(c, [fx.adapterName]), c, fx.adapterName)
    })
    t.test('all at once: prefix and no prefix, different source lengths', async (t) => {
      const jobs = [...fx.adapter.cases.map((c) => ({ c, keys: [fx.adapterName] })), ...fx.base.cases.map((c) => ({ c, keys: [] as string[] }))]
      const results = await Promise.all(jobs.map((j) => run(j.c, j.keys)))
      jobs.forEach((j, i) => check(t, results[i], j.c, j.keys.length > 0 ? `mixed ${fx.adapterName}` : 'mixed base'))
    })
  })
}
