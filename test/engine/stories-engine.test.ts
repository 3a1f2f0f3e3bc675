/**
 * The engine on a real pretrained model: greedy generation through the worker
 * reproduces transformers' outputs for stories260K, and PEFT's own outputs for
 * its two real prefix-tuning adapters, alone and mixed in one batch.
 */
import t from 'tap'
import { join } from 'node:path'
import { EngineClient } from '../../src/engine/engine-client.js'
import type { GenerationParams, TokenEvent } from '../../src/engine/protocol.js'
import { loadPrefixFolder } from '../../src/prefixes/prefix-folder.js'
import { greedyParams } from '../helpers/engine-params.js'
import { engineOptions } from '../helpers/batching-models.js'
import { completionTexts } from '../helpers/completion-text.js'
import { readExpected, storiesModelDir, storiesPrefixesDir } from '../helpers/shared-data.js'

const greedy = greedyParams

function generate(engine: EngineClient, promptIds: number[], prefixKeys: string[], params: GenerationParams) {
  return new Promise<TokenEvent[]>((resolve, reject) => {
    const events: TokenEvent[] = []
    engine.submit(promptIds, prefixKeys, params, {
      onToken: (e) => {
        events.push(e)
        if (e.finish) resolve(events)
      },
      onError: reject,
    })
  })
}

t.test('stories260K through the engine worker', async (t) => {
  const engine = await EngineClient.start(engineOptions(storiesModelDir, { maxBatchSize: 16, maxPrefillTokens: 4096 }))
  t.teardown(() => engine.close())
  t.equal(engine.spec.numLayers, 5)
  t.equal(engine.spec.numKvHeads, 4)

  const base = readExpected(join(storiesModelDir, 'expected-base.json'))
  const adapters = ['dog-max', 'robot-benny']
  for (const name of adapters) {
    const { contribution } = await loadPrefixFolder(join(storiesPrefixesDir, name), { maxFileBytes: 1 << 24 })
    engine.putAdapter(name, contribution)
  }

  t.test('base model, one request at a time, matches transformers greedy', async (t) => {
    const completion = await completionTexts(storiesModelDir)
    for (const c of base.cases) {
      const events = await generate(engine, c.prompt_ids, [], greedy(c.generated_ids.length))
      t.same(events.map((e) => e.token.id), c.generated_ids, c.prompt)
      // transformers decodes the generated ids alone, which drops the first word's space; the completion keeps it.
      t.equal(completion(c), ' ' + c.generated_text)
      t.equal(events.at(-1)!.finish!.generatedText, completion(c))
      t.equal(events.at(-1)!.finish!.reason, 'length')
    }
  })

  t.test('PEFT adapters, alone, match PEFT greedy', async (t) => {
    for (const name of adapters) {
      const expected = readExpected(join(storiesPrefixesDir, name, 'expected.json'))
      for (const c of expected.cases) {
        const events = await generate(engine, c.prompt_ids, [name], greedy(c.generated_ids.length))
        t.same(events.map((e) => e.token.id), c.generated_ids, `${name}: ${c.prompt}`)
      }
    }
  })

  t.test('every case of base and both adapters at once, in one continuous batch', async (t) => {
    const jobs: Array<{ label: string; want: number[]; run: Promise<TokenEvent[]> }> = []
    for (const c of base.cases) {
      jobs.push({ label: `base: ${c.prompt}`, want: c.generated_ids, run: generate(engine, c.prompt_ids, [], greedy(c.generated_ids.length)) })
    }
    for (const name of adapters) {
      for (const c of readExpected(join(storiesPrefixesDir, name, 'expected.json')).cases) {
        jobs.push({ label: `${name}: ${c.prompt}`, want: c.generated_ids, run: generate(engine, c.prompt_ids, [name], greedy(c.generated_ids.length)) })
      }
    }
    for (const j of jobs) t.same((await j.run).map((e) => e.token.id), j.want, j.label)
  })
})
