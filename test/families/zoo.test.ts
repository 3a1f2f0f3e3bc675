/**
 * Every decoder family of the zoo (test/fixtures/zoo: optimum's exports as
 * they are, PEFT prefix adapters, transformers' and PEFT's own greedy ids)
 * served over HTTP: the adapter is uploaded through the API, then base and
 * adapter ids are compared one request at a time and with every request at
 * once, mixing base rows and prefixed rows of different lengths in one batch.
 * Families PEFT cannot build prefixes for serve the base model and refuse
 * uploads with a 422 that says why. The dynamically quantized model is held
 * to onnxruntime's own output one request at a time (see its test). Random
 * batching mixes on these families: batching-families.test.ts.
 */
import t from 'tap'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { loadPrefixFolder } from '../../src/prefixes/prefix-folder.js'
import { startApp, type GenerateReply, type TestLike } from '../helpers/app.js'
import { OrtGreedy } from '../helpers/ort-greedy.js'
import { buildPeftAdapter } from '../helpers/prefix-fixtures.js'
import { peftFolderFiles, upload } from '../helpers/prefix-upload.js'

const zoo = new URL('../fixtures/zoo/', import.meta.url).pathname

interface ZooCase {
  prompt: string
  prompt_ids: number[]
  generated_ids: number[]
  top1_top2_margins: number[]
}

interface ZooExpected {
  base: { cases: ZooCase[] }
  prefix: { error?: string | null; cases: ZooCase[] }
  config_kwargs?: Record<string, unknown>
}

function expectedOf(family: string): ZooExpected {
  return JSON.parse(readFileSync(join(zoo, family, 'prefix', 'expected.json'), 'utf8')) as ZooExpected
}

async function serve(t: TestLike, family: string): Promise<FastifyInstance> {
  const store = mkdtempSync(join(tmpdir(), `prefixd-zoo-${family}-`))
  t.teardown(() => rmSync(store, { recursive: true, force: true }))
  return startApp(t, join(zoo, family, 'model'), { PREFIX_DIR: store })
}

async function generateIds(app: FastifyInstance, prompt: string, maxNewTokens: number, prefixId?: string): Promise<number[]> {
  const parameters: Record<string, unknown> = { max_new_tokens: maxNewTokens, details: true }
  if (prefixId !== undefined) parameters.prefix_id = prefixId
  const res = await app.inject({ method: 'POST', url: '/generate', payload: { inputs: prompt, parameters } })
  if (res.statusCode !== 200) throw new Error(`/generate answered ${res.statusCode}: ${res.body}`)
  return (res.json() as GenerateReply).details!.tokens.map((x) => x.id)
}

async function info(app: FastifyInstance): Promise<Record<string, unknown>> {
  return (await app.inject({ method: 'GET', url: '/info' })).json() as Record<string, unknown>
}

interface Job {
  label: string
  prompt: string
  want: number[]
  prefixId?: string
}

function jobsOf(family: string, expected: ZooExpected, withPrefix: boolean): Job[] {
  const jobs: Job[] = expected.base.cases.map((c) => ({ label: `${family} base: ${c.prompt}`, prompt: c.prompt, want: c.generated_ids }))
  if (withPrefix) {
    for (const c of expected.prefix.cases) jobs.push({ label: `${family} PEFT: ${c.prompt}`, prompt: c.prompt, want: c.generated_ids, prefixId: family })
  }
  return jobs
}

/** What each float family's export needs from prefixd, checked in /info. */
const FLOAT_FAMILIES: Record<string, { derived: string[]; kvHeads: number }> = {
  gpt2: { derived: [], kvHeads: 4 },
  opt: { derived: [], kvHeads: 4 },
  gpt_neox: { derived: [], kvHeads: 4 },
  phi3: { derived: [], kvHeads: 4 },
  qwen2: { derived: [], kvHeads: 2 },
  llama_gqa: { derived: [], kvHeads: 2 },
  gemma: { derived: ['position_ids'], kvHeads: 1 },
  bloom: { derived: [], kvHeads: 4 },
  gpt_neo: { derived: [], kvHeads: 4 },
}

for (const [family, facts] of Object.entries(FLOAT_FAMILIES)) {
  t.test(`${family}: PEFT's and transformers' ids, alone and all at once`, async (t) => {
    const expected = expectedOf(family)
    const app = await serve(t, family)
    const about = await info(app)
    // Other rewrites (inputs-embeds, for prompt adapters) may apply too; positions are this family's own need.
    const rewrites = about.graph_rewrites as string[]
    t.equal(rewrites.includes('position_ids'), facts.derived.includes('position_ids'), `position_ids derived: ${facts.derived.includes('position_ids')}`)
    t.equal(about.num_key_value_heads, facts.kvHeads)
    t.equal(about.batch_invariant, true)
    t.equal(about.prefixes_supported, true)

    const up = await upload(app, 'POST', '/prefixes', peftFolderFiles(join(zoo, family, 'prefix')), { id: family })
    t.equal(up.status, 201, `upload: ${JSON.stringify(up.body)}`)

    const jobs = jobsOf(family, expected, true)
    t.ok(jobs.length >= 6, 'three base and three PEFT cases')
    for (const j of jobs) t.same(await generateIds(app, j.prompt, j.want.length, j.prefixId), j.want, `alone: ${j.label}`)
    // Every request at once: rows with and without the prefix, prompts of different lengths, one batch.
    const together = await Promise.all(jobs.map((j) => generateIds(app, j.prompt, j.want.length, j.prefixId)))
    jobs.forEach((j, i) => t.same(together[i], j.want, `all at once: ${j.label}`))
  })
}

t.test('falcon with multi_query: base ids alone and at once; prefixes refused with the reason', async (t) => {
  const expected = expectedOf('falcon')
  t.match(expected.prefix.error, /Sizes of tensors must match/, 'PEFT itself failed on this family')
  t.notOk(existsSync(join(zoo, 'falcon', 'prefix', 'adapter_config.json')), 'so no adapter exists')
  const app = await serve(t, 'falcon')
  const about = await info(app)
  t.equal(about.num_key_value_heads, 1, 'multi_query means one key/value head')
  t.equal(about.prefixes_supported, false)
  t.match(about.prefix_refusal, /multi_query/)

  // A prefix of exactly the model's cache shape is still refused: PEFT could never have trained it.
  const adapter = buildPeftAdapter({ layers: 2, kvHeads: 1, headDim: 16, P: 4 })
  const r = await upload(app, 'POST', '/prefixes', { 'adapter_config.json': adapter.configJson, 'adapter_model.safetensors': adapter.safetensors }, { id: 'mq' })
  t.equal(r.status, 422)
  t.equal(r.body.error_type, 'prefix_mismatch')
  t.match(r.body.error, /takes no prefixes: falcon with multi_query/)

  const jobs = jobsOf('falcon', expected, false)
  for (const j of jobs) t.same(await generateIds(app, j.prompt, j.want.length), j.want, `alone: ${j.label}`)
  const together = await Promise.all(jobs.map((j) => generateIds(app, j.prompt, j.want.length)))
  jobs.forEach((j, i) => t.same(together[i], j.want, `all at once: ${j.label}`))
})

/**
 * Int8 kernels round differently per CPU instruction set (VNNI or not), so a
 * greedy step whose top-two margin is this small may flip on another machine:
 * expected.json's ids are checked up to the first such step, and every id
 * against onnxruntime run here on the same file.
 */
const INT8_MARGIN = 0.1

t.test('gpt2-int8: one request at a time equals onnxruntime on the same file; /info says not batch-invariant', async (t) => {
  const expected = expectedOf('gpt2-int8')
  const app = await serve(t, 'gpt2-int8')
  const about = await info(app)
  t.equal(about.quantization, 'int8-dynamic')
  t.equal(about.batch_invariant, false)
  const prefixDir = join(zoo, 'gpt2-int8', 'prefix')
  t.equal((await upload(app, 'POST', '/prefixes', peftFolderFiles(prefixDir), { id: 'int8' })).status, 201)

  const reference = await OrtGreedy.open(join(zoo, 'gpt2-int8', 'model', 'model.onnx'))
  t.teardown(() => reference.close())
  const { contribution } = await loadPrefixFolder(prefixDir, { maxFileBytes: 1 << 24 })
  if (contribution.kind !== 'past_kv') throw new Error('the int8 adapter is a prefix')
  const prefix = contribution.prefix
  const kv = { layers: 2, heads: 4, headDim: 16 }
  const cases = [
    ...expected.base.cases.map((c) => ({ c, prefixId: undefined })),
    ...expected.prefix.cases.map((c) => ({ c, prefixId: 'int8' })),
  ]
  for (const { c, prefixId } of cases) {
    const served = await generateIds(app, c.prompt, c.generated_ids.length, prefixId)
    const ort = await reference.generate(c.prompt_ids, c.generated_ids.length, kv, prefixId ? prefix : undefined)
    t.same(served, ort, `onnxruntime's own ids: ${prefixId ?? 'base'}: ${c.prompt}`)
    const sure = c.top1_top2_margins.findIndex((m) => m < INT8_MARGIN)
    const upTo = sure < 0 ? c.generated_ids.length : sure
    if (upTo > 0) t.same(served.slice(0, upTo), c.generated_ids.slice(0, upTo), `expected.json before step ${upTo}: ${prefixId ?? 'base'}: ${c.prompt}`)
  }
})

