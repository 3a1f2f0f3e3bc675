/**
 * LoRA adapters through HTTP on the real stories260K model: uploaded as PEFT
 * saves them (kind lora), refused with the reason named, and served
 * PEFT-exact on /generate and /v1/completions, alone and as the hybrid-owl
 * pair (a prefix and a LoRA named together: a list, or ids joined by '+').
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import OpenAI from 'openai'
import t from 'tap'
import { listenOnLoopback, startApp, type GenerateReply } from '../helpers/app.js'
import { completionTexts } from '../helpers/completion-text.js'
import { peftFolderFiles, upload } from '../helpers/prefix-upload.js'
import { readExpected, storiesModelDir, storiesPrefixesDir, type ExpectedCase } from '../helpers/shared-data.js'

const ADAPTERS = fileURLToPath(new URL('../fixtures/adapters/stories260K/', import.meta.url))
const kikiDir = join(ADAPTERS, 'lora-bird-kiki')
const kiki = readExpected(join(kikiDir, 'expected.json'))
const owl = JSON.parse(readFileSync(join(ADAPTERS, 'hybrid-owl', 'expected.json'), 'utf8')) as {
  cases: ExpectedCase[]
  controls: { prefix_only: ExpectedCase[]; lora_only: ExpectedCase[] }
}
const kikiConfig = JSON.parse(readFileSync(join(kikiDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>

// startApp gives each server a fresh PREFIX_DIR, removed when the test ends.
const app = await startApp(t, storiesModelDir)

async function generate(body: unknown) {
  const res = await app.inject({ method: 'POST', url: '/generate', payload: body as object })
  return { status: res.statusCode, body: res.json() as GenerateReply & { error?: string; error_type?: string } }
}

const ids = (r: { body: GenerateReply }) => r.body.details?.tokens.map((x) => x.id)
/** The text TGI and OpenAI return for a case: its ids decoded after the prompt (the leading space kept). */
const completion = await completionTexts(storiesModelDir)

t.test('uploads: a PEFT LoRA is stored as kind lora; the pair is two ordinary uploads', async (t) => {
  const r = await upload(app, 'POST', '/prefixes', peftFolderFiles(kikiDir), { id: 'kiki' })
  t.equal(r.status, 201, JSON.stringify(r.body))
  t.match(r.body, { id: 'kiki', kind: 'lora', rank: 4, num_virtual_tokens: 0, format: 'peft', dtype: 'F32' })
  t.same([...(r.body.target_modules as string[])].sort(), ['q_proj', 'v_proj'])
  t.equal((await upload(app, 'POST', '/prefixes', peftFolderFiles(join(ADAPTERS, 'hybrid-owl', 'lora')), { id: 'owl-lora' })).status, 201)
  t.equal((await upload(app, 'POST', '/prefixes', peftFolderFiles(join(ADAPTERS, 'hybrid-owl', 'prefix')), { id: 'owl-prefix' })).status, 201)
  t.equal((await upload(app, 'POST', '/prefixes', peftFolderFiles(join(storiesPrefixesDir, 'dog-max')), { id: 'dog-max' })).status, 201)
  const listed = (await app.inject({ method: 'GET', url: '/prefixes/kiki' })).json() as Record<string, unknown>
  t.match(listed, { kind: 'lora', rank: 4 })
  const download = await app.inject({ method: 'GET', url: '/prefixes/kiki/download' })
  t.equal(download.statusCode, 200, 'the stored form downloads')
  const again = await upload(app, 'POST', '/prefixes', { 'prefix.safetensors': download.rawPayload }, { id: 'kiki-copy' })
  t.equal(again.status, 201, 'and uploads back as the same adapter')
  t.equal(again.body.sha256, r.body.sha256)
})

t.test('refused LoRA uploads name the reason', async (t) => {
  const weights = readFileSync(join(kikiDir, 'adapter_model.safetensors'))
  const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ['DoRA', { use_dora: true }, 'invalid_prefix', /DoRA/],
    ['modules_to_save', { modules_to_save: ['lm_head'] }, 'invalid_prefix', /modules_to_save/],
    ['bias', { bias: 'all' }, 'invalid_prefix', /bias "all"/],
    ['unknown module', { target_modules: ['q_proj', 'v_proj', 'qkv_proj'] }, 'prefix_mismatch', /'qkv_proj', which the model does not have or takes no LoRA on \(LoRA can target: q_proj, v_proj; LORA_TARGET_MODULES/],
  ]
  for (const [label, change, type, message] of cases) {
    const r = await upload(app, 'POST', '/prefixes', { 'adapter_config.json': JSON.stringify({ ...kikiConfig, ...change }), 'adapter_model.safetensors': weights }, { id: `bad-${label.replace(/\W/g, '')}` })
    t.equal(r.status, 422, label)
    t.equal(r.body.error_type, type, label)
    t.match(r.body.error, message, label)
  }
  // The default LORA_TARGET_MODULES (peft) serves Llama's q_proj and v_proj: a k_proj LoRA says so.
  const header = Number(weights.readBigUInt64LE(0))
  const renamed = weights.subarray(8, 8 + header).toString('latin1').replaceAll('v_proj', 'k_proj')
  const kWeights = Buffer.concat([weights.subarray(0, 8), Buffer.from(renamed, 'latin1'), weights.subarray(8 + header)])
  const onK = await upload(app, 'POST', '/prefixes', { 'adapter_config.json': JSON.stringify({ ...kikiConfig, target_modules: ['q_proj', 'k_proj'] }), 'adapter_model.safetensors': kWeights }, { id: 'on-k' })
  t.equal(onK.status, 422)
  t.match(onK.body.error, /'k_proj', which the model does not have or takes no LoRA on \(LoRA can target: q_proj, v_proj; LORA_TARGET_MODULES/)
  const pickled = await upload(app, 'POST', '/prefixes', { 'adapter_config.json': JSON.stringify(kikiConfig), 'adapter_model.bin': Buffer.from([0x80, 0x04, 0x95]) }, { id: 'bad-pickle' })
  t.equal(pickled.status, 422)
  t.match(pickled.body.error, /pickle/)
})

t.test('/generate: PEFT greedy ids for the LoRA, the pair and its controls, all at once', async (t) => {
  const jobs: Array<{ label: string; params: Record<string, unknown>; cases: ExpectedCase[] }> = [
    { label: 'kiki by adapter_id', params: { adapter_id: 'kiki' }, cases: kiki.cases },
    { label: 'pair as a list', params: { prefix_id: ['owl-prefix', 'owl-lora'] }, cases: owl.cases },
    { label: 'pair joined by +', params: { adapter_id: 'owl-lora+owl-prefix' }, cases: owl.cases },
    { label: 'prefix half only', params: { prefix_id: 'owl-prefix' }, cases: owl.controls.prefix_only },
    { label: 'LoRA half only', params: { prefix_id: 'owl-lora' }, cases: owl.controls.lora_only },
    { label: 'dog-max', params: { prefix_id: 'dog-max' }, cases: readExpected(join(storiesPrefixesDir, 'dog-max', 'expected.json')).cases },
    { label: 'base', params: {}, cases: readExpected(join(storiesModelDir, 'expected-base.json')).cases },
  ]
  const runs = jobs.flatMap((job) =>
    job.cases.map((c) => ({
      label: `${job.label}: ${c.prompt}`,
      c,
      reply: generate({ inputs: c.prompt, parameters: { ...job.params, max_new_tokens: c.generated_ids.length, details: true } }),
    })),
  )
  for (const r of runs) {
    const reply = await r.reply
    t.equal(reply.status, 200, r.label)
    t.same(ids(reply), r.c.generated_ids, r.label)
    t.equal(reply.body.generated_text, completion(r.c), r.label)
  }
})

t.test('naming errors: two LoRAs, an unknown half', async (t) => {
  const two = await generate({ inputs: 'Once', parameters: { prefix_id: ['kiki', 'owl-lora'], max_new_tokens: 2 } })
  t.equal(two.status, 422)
  t.match(two.body.error, /LoRA/)
  const missing = await generate({ inputs: 'Once', parameters: { adapter_id: 'owl-prefix+nope', max_new_tokens: 2 } })
  t.equal(missing.status, 404)
  t.match(missing.body.error, /nope/)
})

t.test('OpenAI completions: model names one adapter of any kind, or a pair joined by +', async (t) => {
  const client = new OpenAI({ baseURL: `${await listenOnLoopback(app)}/v1`, apiKey: 'unused' })
  for (const [model, c] of [['kiki', kiki.cases[2]], ['owl-prefix+owl-lora', owl.cases[1]]] as const) {
    const r = await client.completions.create({ model, prompt: c.prompt, max_tokens: c.generated_ids.length, temperature: 0 })
    t.equal(r.choices[0].text, completion(c), model)
  }
})

t.test('LORA_TARGET_MODULES=none: the model loads as is and LoRA uploads are refused', async (t) => {
  const plain = await startApp(t, storiesModelDir, { LORA_TARGET_MODULES: 'none' })
  const r = await upload(plain, 'POST', '/prefixes', peftFolderFiles(kikiDir), { id: 'kiki' })
  t.equal(r.status, 422)
  t.match(r.body.error, /serves no LoRA/)
  const rewrites = async (a: typeof app) => ((await a.inject({ method: 'GET', url: '/info' })).json() as { graph_rewrites: string[] }).graph_rewrites
  t.ok((await rewrites(app)).includes('lora_per_row'), '/info names the LoRA rewrite where it applied')
  t.notOk((await rewrites(plain)).includes('lora_per_row'), 'and not where LoRA is off')
})
