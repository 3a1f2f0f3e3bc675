/**
 * Prompt tuning and P-tuning through HTTP on the real stories260K model: PEFT's
 * files uploaded as `save_pretrained` writes them (or seeded from a folder)
 * generate PEFT's own tokens on the TGI route and PEFT's text on the OpenAI
 * route (with the completion's leading space, as vLLM and TGI give it); a prompt-tuning adapter composes with a prefix; the stored file round
 * trips; and every file the server cannot serve is refused with a 4xx that
 * names the problem, leaving nothing behind.
 */
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { encodeF32 } from '../../src/prefixes/dtype-convert.js'
import { serializeSafetensors } from '../../src/prefixes/safetensors.js'
import { startApp, type GenerateReply } from '../helpers/app.js'
import { completionTexts } from '../helpers/completion-text.js'
import { PICKLE_BYTES } from '../helpers/prefix-fixtures.js'
import { promptAdaptersDir } from '../helpers/prompt-adapters.js'
import { peftFolderFiles, upload, type UploadFiles } from '../helpers/prefix-upload.js'
import { readExpected, storiesModelDir, storiesPrefixesDir } from '../helpers/shared-data.js'

const catDir = join(promptAdaptersDir, 'pt-cat-luna')
const leoDir = join(promptAdaptersDir, 'ptune-king-leo')
const cat = readExpected(join(catDir, 'expected.json'))
const leo = readExpected(join(leoDir, 'expected.json'))
/** decode(prompt + generated) - decode(prompt): the completion text with its leading space. */
const completion = await completionTexts(storiesModelDir)

const prefixDir = mkdtempSync(join(tmpdir(), 'prefixd-prompt-http-'))
t.teardown(() => rmSync(prefixDir, { recursive: true, force: true }))
symlinkSync(leoDir, join(prefixDir, 'seeded-leo'))

const app = await startApp(t, storiesModelDir, { PREFIX_DIR: prefixDir })
await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
if (address === null || typeof address === 'string') throw new Error('no TCP address')
const client = new OpenAI({ baseURL: `http://127.0.0.1:${address.port}/v1`, apiKey: 'not-checked', maxRetries: 0 })

async function generate(prefixId: string | string[], prompt: string, n: number) {
  const res = await app.inject({ method: 'POST', url: '/generate', payload: { inputs: prompt, parameters: { prefix_id: prefixId, max_new_tokens: n, details: true } } })
  const body = res.json() as GenerateReply & { error_type?: string; error?: string }
  return { status: res.statusCode, ids: body.details?.tokens.map((x) => x.id), logprobs: body.details?.tokens.map((x) => x.logprob), body }
}

/** A PEFT prompt-tuning save with these changes to its config and its one tensor. */
function promptTuningFiles(config: Record<string, unknown>, rows: number, width: number, fill = (i: number) => Math.sin(i)): UploadFiles {
  const base = JSON.parse(readFileSync(join(catDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>
  const values = Float32Array.from({ length: rows * width }, (_, i) => fill(i))
  return {
    'adapter_config.json': JSON.stringify({ ...base, ...config }),
    'adapter_model.safetensors': serializeSafetensors({ prompt_embeddings: { dtype: 'F32', shape: [rows, width], data: encodeF32(values) } }),
  }
}

t.test('upload PROMPT_TUNING: its record says its kind; /generate gives PEFT ids on every prompt', async (t) => {
  const r = await upload(app, 'POST', '/prefixes', peftFolderFiles(catDir), { id: 'cat', description: 'a cat named Luna' })
  t.equal(r.status, 201, JSON.stringify(r.body))
  t.match(r.body, { id: 'cat', kind: 'prompt_tuning', num_virtual_tokens: 8, hidden_size: 64, dtype: 'F32', format: 'peft' })
  t.notOk('num_layers' in r.body, 'no per-layer shape: it has none')
  for (const c of cat.cases) {
    const got = await generate('cat', c.prompt, c.generated_ids.length)
    t.equal(got.status, 200, JSON.stringify(got.body))
    t.same(got.ids, c.generated_ids, `"${c.prompt}"`)
  }
})

t.test('P_TUNING seeded from PREFIX_DIR: kind p_tuning, PEFT ids', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/prefixes/seeded-leo' })
  t.match(res.json(), { kind: 'p_tuning', num_virtual_tokens: 8, hidden_size: 64, source: 'folder' })
  for (const c of leo.cases) t.same((await generate('seeded-leo', c.prompt, c.generated_ids.length)).ids, c.generated_ids, `"${c.prompt}"`)
  const list = (await app.inject({ method: 'GET', url: '/prefixes' })).json() as { prefixes: Array<{ id: string; kind: string }> }
  t.same(Object.fromEntries(list.prefixes.map((p) => [p.id, p.kind])), { cat: 'prompt_tuning', 'seeded-leo': 'p_tuning' })
})

t.test('OpenAI completions: the adapter as the model gives PEFT text, streamed or not', async (t) => {
  for (const [model, c] of [['cat', cat.cases[1]], ['seeded-leo', leo.cases[2]]] as const) {
    const r = await client.completions.create({ model, prompt: c.prompt, max_tokens: c.generated_ids.length, temperature: 0 })
    t.equal(r.choices[0].text, completion(c), `${model}: "${c.prompt}"`)
    t.equal(r.usage?.completion_tokens, c.generated_ids.length)
    const stream = await client.completions.create({ model, prompt: c.prompt, max_tokens: c.generated_ids.length, temperature: 0, stream: true })
    let text = ''
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? ''
    t.equal(text, completion(c), `${model} streamed`)
  }
})

t.test('a prompt-tuning adapter composes with a prefix on one request', async (t) => {
  t.equal((await upload(app, 'POST', '/prefixes', peftFolderFiles(join(storiesPrefixesDir, 'dog-max')), { id: 'dog' })).status, 201)
  const prompt = cat.cases[0].prompt
  const both = await generate(['cat', 'dog'], prompt, 12)
  t.equal(both.status, 200, JSON.stringify(both.body))
  t.same(both.body.details?.prefix_id, ['cat', 'dog'])
  // Both act: the tokens' logprobs are neither those of one adapter alone nor of the other.
  t.notSame(both.logprobs, (await generate('cat', prompt, 12)).logprobs, 'not the prompt-tuning adapter alone')
  t.notSame(both.logprobs, (await generate('dog', prompt, 12)).logprobs, 'not the prefix alone')
  // Virtual tokens of both count against the model's positions.
  const tooLong = await generate(['cat', 'dog'], prompt, 600)
  t.equal(tooLong.status, 422)
  t.match(tooLong.body.error, /prefix \(16\)/)
})

t.test('the stored file downloads and uploads again as the same version', async (t) => {
  const file = await app.inject({ method: 'GET', url: '/prefixes/cat/download' })
  t.equal(file.statusCode, 200)
  const again = await upload(app, 'POST', '/prefixes', { 'prefix.safetensors': file.rawPayload }, { id: 'cat-copy' })
  t.equal(again.status, 201, JSON.stringify(again.body))
  t.match(again.body, { kind: 'prompt_tuning', format: 'native', sha256: file.headers.etag?.toString().replaceAll('"', '') })
  t.same((await generate('cat-copy', cat.cases[3].prompt, 16)).ids, cat.cases[3].generated_ids.slice(0, 16))
})

t.test('files the server cannot serve are refused by name, and nothing is stored', async (t) => {
  const cases: Array<{ name: string; files: UploadFiles; type: string; message: RegExp }> = [
    { name: 'another hidden size', files: promptTuningFiles({ token_dim: 32 }, 8, 32), type: 'prefix_mismatch', message: /hidden size 32 \(token_dim\), the model has 64/ },
    { name: 'LoRA', files: promptTuningFiles({ peft_type: 'LORA' }, 8, 64), type: 'invalid_prefix', message: /peft_type "LORA"; only PREFIX_TUNING, PROMPT_TUNING or P_TUNING/ },
    { name: 'IA3', files: promptTuningFiles({ peft_type: 'IA3' }, 8, 64), type: 'invalid_prefix', message: /peft_type "IA3"/ },
    { name: 'a NaN', files: promptTuningFiles({}, 8, 64, (i) => (i === 77 ? NaN : 0.1)), type: 'invalid_prefix', message: /'prompt_embeddings' holds 1 NaN or infinite value \(first at flat index 77/ },
    { name: 'an infinity', files: promptTuningFiles({}, 8, 64, (i) => (i === 3 ? Infinity : 0.1)), type: 'invalid_prefix', message: /NaN or infinite/ },
    { name: 'rows not num_virtual_tokens', files: promptTuningFiles({ num_virtual_tokens: 6 }, 8, 64), type: 'invalid_prefix', message: /'prompt_embeddings' is \[8, 64\], but num_virtual_tokens 6 and hidden size 64 need \[6, 64\]/ },
    { name: 'encoder-decoder', files: promptTuningFiles({ num_transformer_submodules: 2 }, 16, 64), type: 'invalid_prefix', message: /num_transformer_submodules/ },
    { name: 'a pickle', files: { 'adapter_config.json': readFileSync(join(catDir, 'adapter_config.json')), 'adapter_model.bin': PICKLE_BYTES }, type: 'invalid_prefix', message: /pickle files are not accepted/ },
  ]
  for (const c of cases) {
    const r = await upload(app, 'POST', '/prefixes', c.files, { id: 'refused' })
    t.equal(r.status, 422, c.name)
    t.equal(r.body.error_type, c.type, c.name)
    t.match(r.body.error, c.message, c.name)
  }
  t.equal((await app.inject({ method: 'GET', url: '/prefixes/refused' })).statusCode, 404, 'nothing was stored')
})
