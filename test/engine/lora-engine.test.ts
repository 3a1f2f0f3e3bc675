/**
 * LoRA rows in the engine on the real stories260K model: PEFT's own greedy
 * ids for lora-bird-kiki, and for the PT-PEFT pair hybrid-owl (its LoRA on the
 * real tokens, its prefix as past), alone and all mixed in one continuous
 * batch with prefix rows and base rows. The pair's controls (PEFT with only
 * one half) must come out when only that half is named: a server that drops a
 * half gives one of them instead of the pair's ids. Then the batching
 * property with LoRA rows: random mixes of base, prefix, LoRA and
 * prefix + LoRA requests (ranks 4 and 8, q/v or every module) arriving and
 * leaving at random get, batched, the tokens they get alone, logprobs within
 * 1e-4: in this thread (every projection taking LoRA) and through the engine
 * worker (PEFT's default targets, adapters crossing the thread boundary).
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import t from 'tap'
import { startFixture } from '../helpers/batching-models.js'
import { assertBatchingProperty } from '../helpers/batching-property.js'
import { seededLora } from '../helpers/lora-fixtures.js'
import type { GenerationParams, TokenEvent } from '../../src/engine/protocol.js'
import { checkLoraFitsModel, readLoraAdapter, type LoraAdapter } from '../../src/prefixes/lora-adapter.js'
import { readPeftAdapter } from '../../src/prefixes/peft-adapter.js'
import { loadPrefixFolder } from '../../src/prefixes/prefix-folder.js'
import { InProcessEngine } from '../helpers/batching-inprocess.js'
import { greedyParams } from '../helpers/engine-params.js'
import { readExpected, storiesModelDir, storiesPrefixesDir, type ExpectedCase } from '../helpers/shared-data.js'

const ADAPTERS = fileURLToPath(new URL('../fixtures/adapters/stories260K/', import.meta.url))
const read = (...parts: string[]) => readFileSync(join(ADAPTERS, ...parts))

function readLora(dir: string): LoraAdapter {
  return readLoraAdapter(read(dir, 'adapter_config.json'), read(dir, 'adapter_model.safetensors'))
}

interface HybridExpected {
  cases: ExpectedCase[]
  controls: { prefix_only: ExpectedCase[]; lora_only: ExpectedCase[] }
}

function generate(engine: InProcessEngine, promptIds: number[], keys: string[], params: GenerationParams): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const ids: number[] = []
    engine.submit(promptIds, keys, params, {
      onToken: (e: TokenEvent) => {
        ids.push(e.token.id)
        if (e.finish) resolve(ids)
      },
      onError: reject,
    })
  })
}

t.test('LoRA and prefix + LoRA rows on stories260K match PEFT', async (t) => {
  // Room for all 28 requests in one batch; prefill admits them a few at a time, so rows join a running batch.
  const engine = await InProcessEngine.load(storiesModelDir, { maxBatchSize: 32, maxPrefillTokens: 128 })
  t.same(
    engine.loraProjections.filter((p) => p.key.startsWith('layers.0.')).map((p) => `${p.key} ${p.inFeatures}→${p.outFeatures}`).sort(),
    [
      'layers.0.mlp.down_proj 172→64',
      'layers.0.mlp.gate_proj 64→172',
      'layers.0.mlp.up_proj 64→172',
      'layers.0.self_attn.k_proj 64→32',
      'layers.0.self_attn.o_proj 64→64',
      'layers.0.self_attn.q_proj 64→64',
      'layers.0.self_attn.v_proj 64→32',
    ],
    'every Llama projection of a layer is targetable, with its size',
  )
  t.equal(engine.loraProjections.length, 5 * 7)

  const kiki = readLora('lora-bird-kiki')
  const owlLora = readLora(join('hybrid-owl', 'lora'))
  checkLoraFitsModel(kiki, engine.loraProjections)
  checkLoraFitsModel(owlLora, engine.loraProjections)
  engine.putAdapter('kiki', { kind: 'lora', lora: kiki })
  engine.putAdapter('owl-lora', { kind: 'lora', lora: owlLora })
  const owlPrefix = readPeftAdapter(read('hybrid-owl', 'prefix', 'adapter_config.json'), read('hybrid-owl', 'prefix', 'adapter_model.safetensors'))
  engine.putAdapter('owl-prefix', { kind: 'past_kv', prefix: owlPrefix.prefix })
  engine.putAdapter('dog-max', (await loadPrefixFolder(join(storiesPrefixesDir, 'dog-max'), { maxFileBytes: 1 << 24 })).contribution)
  const folder = await loadPrefixFolder(join(ADAPTERS, 'lora-bird-kiki'), { maxFileBytes: 1 << 24 })
  t.match(folder, { kind: 'lora', format: 'peft', contribution: { kind: 'lora', lora: { rank: 4 } } }, 'a PEFT LoRA folder loads as its kind')

  const kikiCases = readExpected(join(ADAPTERS, 'lora-bird-kiki', 'expected.json')).cases
  const owl = JSON.parse(read('hybrid-owl', 'expected.json').toString('utf8')) as HybridExpected
  const jobs: Array<{ label: string; keys: string[]; cases: ExpectedCase[] }> = [
    { label: 'base', keys: [], cases: readExpected(join(storiesModelDir, 'expected-base.json')).cases },
    { label: 'lora-bird-kiki', keys: ['kiki'], cases: kikiCases },
    { label: 'hybrid-owl (prefix + LoRA)', keys: ['owl-prefix', 'owl-lora'], cases: owl.cases },
    { label: 'hybrid-owl, LoRA named first', keys: ['owl-lora', 'owl-prefix'], cases: owl.cases },
    { label: 'hybrid-owl prefix only (control)', keys: ['owl-prefix'], cases: owl.controls.prefix_only },
    { label: 'hybrid-owl LoRA only (control)', keys: ['owl-lora'], cases: owl.controls.lora_only },
    { label: 'dog-max prefix', keys: ['dog-max'], cases: readExpected(join(storiesPrefixesDir, 'dog-max', 'expected.json')).cases },
  ]

  t.test('each adapter alone, one request at a time', async (t) => {
    for (const job of jobs) {
      for (const c of job.cases) {
        const ids = await generate(engine, c.prompt_ids, job.keys, greedyParams(c.generated_ids.length))
        t.same(ids, c.generated_ids, `${job.label}: ${c.prompt}`)
      }
    }
  })

  t.test('all of them at once, in one continuous batch', async (t) => {
    const runs = jobs.flatMap((job) =>
      job.cases.map((c) => ({
        label: `${job.label}: ${c.prompt}`,
        want: c.generated_ids,
        run: generate(engine, c.prompt_ids, job.keys, greedyParams(c.generated_ids.length)),
      })),
    )
    for (const r of runs) t.same(await r.run, r.want, r.label)
    const widest = Math.max(...engine.steps.flatMap((s) => s.passes.map((p) => p.feed.batch)))
    t.ok(widest >= 16, `rows of every kind shared forward passes (widest pass: ${widest} rows)`)
    const mixed = engine.steps.some((s) =>
      s.passes.some((p) => {
        const rows = p.feed.loraRows ?? []
        return rows.includes(kiki) && rows.includes(owlLora) && rows.includes(null)
      }),
    )
    t.ok(mixed, 'one forward pass held rows with different LoRAs and rows without')
  })

  t.test('batched equals alone: random mixes of LoRA, hybrid, prefix and base rows', async (t) => {
    const loras = new Map<string, LoraAdapter>([
      ['kiki', kiki],
      ['owl-lora', owlLora],
      ['rand-all-8', seededLora(engine.loraProjections, () => true, 8, 77)],
      ['rand-kv-2', seededLora(engine.loraProjections, (m) => m === 'k_proj' || m === 'v_proj', 2, 78, 0.3)],
    ])
    for (const [k, a] of loras) engine.putAdapter(k, { kind: 'lora', lora: a })
    const prefixes = new Map([['owl-prefix', owlPrefix.prefix], ['dog-max', null]])
    const fixture = { name: 'stories260K with LoRA', engine, prefixes, loras }
    const report = await assertBatchingProperty(fixture, { sampling: true }, { numRuns: 10, seed: 1717 })
    t.ok(report.requests >= 20, `${report.requests} requests, ${report.tokens} tokens compared`)
  })
})

t.test('batched equals alone through the engine worker (the path HTTP takes), default LoRA targets', async (t) => {
  const kiki = readLora('lora-bird-kiki')
  const owlLora = readLora(join('hybrid-owl', 'lora'))
  const owlPrefix = readPeftAdapter(read('hybrid-owl', 'prefix', 'adapter_config.json'), read('hybrid-owl', 'prefix', 'adapter_model.safetensors')).prefix
  const fixture = await startFixture(t, 'stories260K worker with LoRA', storiesModelDir, async () => new Map([['owl-prefix', { kind: 'past_kv' as const, prefix: owlPrefix }]]))
  const { engine } = fixture
  t.same(new Set(engine.loraProjections.map((p) => p.key.split('.').at(-1))), new Set(['q_proj', 'v_proj']), "the worker's graph takes LoRA on PEFT's Llama defaults")
  t.ok(engine.accepts.has('lora'))
  const loras = new Map([
    ['kiki', kiki],
    ['owl-lora', owlLora],
    ['rand-qv-8', seededLora(engine.loraProjections, () => true, 8, 91)],
  ])
  for (const [k, a] of loras) engine.putAdapter(k, { kind: 'lora', lora: a })
  const report = await assertBatchingProperty({ ...fixture, loras }, { sampling: true }, { numRuns: 8, seed: 2024 })
  t.ok(report.requests >= 16, `${report.requests} requests, ${report.tokens} tokens compared`)
})

