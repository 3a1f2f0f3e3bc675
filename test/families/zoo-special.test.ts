/**
 * The zoo families that need something of prefixd, served over HTTP with the
 * adapter uploaded through the API: grouped-query llama, gemma (positions
 * derived: its export has no position_ids), bloom (ALiBi, no position limit
 * in config.json), gpt_neo (num_heads), falcon with multi_query (one
 * key/value head; PEFT cannot build its prefixes, so uploads get a 422 that
 * says why), and the dynamically quantized gpt2, held to onnxruntime's own
 * output one request at a time.
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { loadPrefixFolder } from '../../src/prefixes/prefix-folder.js'
import { OrtGreedy } from '../helpers/ort-greedy.js'
import { buildPeftAdapter } from '../helpers/prefix-fixtures.js'
import { peftFolderFiles, upload } from '../helpers/prefix-upload.js'
import { checkFloatFamily, expectedOf, generateIds, info, jobsOf, serve, zoo, type FamilyFacts } from '../helpers/zoo.js'

const SPECIAL_FAMILIES: Record<string, FamilyFacts> = {
  llama_gqa: { positions: false, kvHeads: 2 },
  gemma: { positions: true, kvHeads: 1 },
  bloom: { positions: false, kvHeads: 4 },
  gpt_neo: { positions: false, kvHeads: 4 },
}

for (const [family, facts] of Object.entries(SPECIAL_FAMILIES)) {
  t.test(`${family}: PEFT's and transformers' ids, alone and all at once`, (t) => checkFloatFamily(t, family, facts))
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

