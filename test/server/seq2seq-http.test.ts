/**
 * An encoder-decoder model (bart-toy) behind the same HTTP API as decoder-only
 * ones: the source text is `inputs` / `prompt`; PEFT's greedy ids through
 * /generate (all requests at once, prefix and none), /generate_stream and
 * /v1/completions; seeds, stop sequences, details and per-prefix metrics;
 * the store refuses a decoder-only prefix with a 422 naming the mismatch; chat
 * is a 400 since the model has no chat template.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { startApp, type GenerateReply } from '../helpers/app.js'
import { buildPeftAdapter } from '../helpers/prefix-fixtures.js'
import { peftFolderFiles, upload } from '../helpers/prefix-upload.js'
import { promptAdaptersDir } from '../helpers/prompt-adapters.js'
import { readEvents } from '../helpers/sse.js'
import { SEQ2SEQ_FIXTURES } from '../helpers/seq2seq-data.js'

const fx = SEQ2SEQ_FIXTURES.find((f) => f.name === 'bart-toy')!
const store = mkdtempSync(join(tmpdir(), 'prefixd-seq2seq-store-'))
t.teardown(() => rmSync(store, { recursive: true, force: true }))
const app = await startApp(t, fx.modelDir, { PREFIX_DIR: store })
const address = await app.listen({ host: '127.0.0.1', port: 0 })
const MAX_NEW = 24

async function post(path: string, body: object) {
  const res = await app.inject({ method: 'POST', url: path, payload: body })
  return { status: res.statusCode, body: res.json() as GenerateReply & Record<string, unknown> }
}

t.test('store: the PEFT SEQ_2_SEQ_LM adapter is accepted, a decoder-only one of the same shape is a 422', async (t) => {
  const ok = await upload(app, 'POST', '/prefixes', peftFolderFiles(fx.adapterDir), { id: fx.adapterName })
  t.equal(ok.status, 201, JSON.stringify(ok.body))
  t.equal(ok.body.num_virtual_tokens, 8)
  const decoderOnly = buildPeftAdapter({ layers: 2, kvHeads: 4, headDim: 16, P: 4 })
  const refused = await upload(app, 'POST', '/prefixes', { 'adapter_config.json': decoderOnly.configJson, 'adapter_model.safetensors': decoderOnly.safetensors }, { id: 'causal' })
  t.equal(refused.status, 422)
  t.match(refused.body.error, /trained for a decoder-only model; this server's model is encoder-decoder/)
  // Prompt tuning for a model of the same hidden size (64): it needs input embeddings, which this engine does not take.
  const prompt = await upload(app, 'POST', '/prefixes', peftFolderFiles(join(promptAdaptersDir, 'pt-cat-luna')), { id: 'prompt' })
  t.equal(prompt.status, 422)
  t.match(prompt.body.error, /needs input embeddings/)
})

t.test('/generate: PEFT and transformers greedy ids, every request at once', async (t) => {
  const jobs = [...fx.adapter.cases.map((c) => ({ c, prefix: fx.adapterName })), ...fx.base.cases.map((c) => ({ c, prefix: null }))]
  const replies = await Promise.all(
    jobs.map(({ c, prefix }) => post('/generate', { inputs: c.source, parameters: { prefix_id: prefix, max_new_tokens: MAX_NEW, details: true } })),
  )
  jobs.forEach(({ c, prefix }, i) => {
    const r = replies[i]
    t.equal(r.status, 200)
    t.same(r.body.details!.tokens.map((x) => x.id), c.generated_ids, `${prefix ?? 'base'}: ${c.source}`)
    t.equal(r.body.generated_text, c.generated_text)
    t.equal(r.body.details!.finish_reason, 'eos_token')
    t.equal(r.body.details!.generated_tokens, c.generated_ids.length)
  })
})

t.test('/generate_stream: the adapter tokens as events, text adds up', async (t) => {
  const c = fx.adapter.cases[1]
  const res = await request(`${address}/generate_stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: c.source, parameters: { adapter_id: fx.adapterName, max_new_tokens: MAX_NEW } }),
  })
  t.equal(res.statusCode, 200)
  const events = (await readEvents(res.body)) as Array<{ token: { id: number; text: string }; generated_text: string | null }>
  t.same(events.map((e) => e.token.id), c.generated_ids)
  t.equal(events.at(-1)!.generated_text, c.generated_text)
})

t.test('/v1/completions: prompt = source, model = prefix id; stop sequences cut as in OpenAI', async (t) => {
  const c = fx.adapter.cases[2]
  const r = await post('/v1/completions', { model: fx.adapterName, prompt: c.source, max_tokens: MAX_NEW, temperature: 0 })
  t.equal(r.status, 200)
  const choices = r.body.choices as Array<{ text: string; finish_reason: string }>
  t.equal(choices[0].text, c.generated_text)
  t.equal(choices[0].finish_reason, 'stop')
  const word = c.generated_text.split(' ')[2]
  const stopped = await post('/v1/completions', { model: fx.adapterName, prompt: c.source, max_tokens: MAX_NEW, temperature: 0, stop: word })
  t.equal((stopped.body.choices as Array<{ text: string }>)[0].text, c.generated_text.slice(0, c.generated_text.indexOf(word)))
})

t.test('sampling: a seed reproduces its tokens and is reported', async (t) => {
  const body = { inputs: fx.base.cases[0].source, parameters: { do_sample: true, temperature: 1.5, seed: 11, max_new_tokens: 12, details: true } }
  const [a, b] = await Promise.all([post('/generate', body), post('/generate', body)])
  t.equal(a.body.details!.seed, 11)
  t.same(a.body.details!.tokens.map((x) => x.id), b.body.details!.tokens.map((x) => x.id))
})

t.test('/info names the architecture and the decoder shape', async (t) => {
  const info = (await app.inject({ method: 'GET', url: '/info' })).json() as Record<string, unknown>
  t.match(info, { model_type: 'bart', architecture: 'encoder-decoder', num_layers: 2, num_key_value_heads: 4, head_dim: 16, max_positions: 64 })
})

t.test('chat: no template, a 400 that says so', async (t) => {
  const r = await post('/v1/chat/completions', { model: fx.adapterName, messages: [{ role: 'user', content: 'hi' }] })
  t.equal(r.status, 400)
  t.match(JSON.stringify(r.body), /no chat template/)
})

t.test('metrics: requests counted per prefix', async (t) => {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const line = text.split('\n').find((l) => l.startsWith('prefixd_requests_total{') && l.includes(`prefix="${fx.adapterName}"`) && l.includes('outcome="success"'))
  t.ok(line, 'a success counter for the adapter')
  t.ok(Number(line!.split(' ').at(-1)) >= fx.adapter.cases.length)
})

t.test('positions: the source and the decoder have their own budgets (bart-toy: 64 each)', async (t) => {
  const source = Array.from({ length: 5 }, () => fx.base.cases[0].source).join(' ')
  // 5 sentences (~45 tokens) + 8 prefix + 40 new would overflow one shared sequence, not two.
  const fits = await post('/generate', { inputs: source, parameters: { prefix_id: fx.adapterName, max_new_tokens: 40 } })
  t.equal(fits.status, 200, JSON.stringify(fits.body))
  const long = await post('/generate', { inputs: source, parameters: { prefix_id: fx.adapterName, max_new_tokens: 56 } })
  t.equal(long.status, 422)
  t.match(long.body.error, /prefix \(8\) \+ decoder start \(1\) \+ max_new_tokens \(56\) = 65 exceeds the decoder's 64 positions/)
  const tooLongSource = await post('/generate', { inputs: Array.from({ length: 8 }, () => fx.base.cases[0].source).join(' '), parameters: { max_new_tokens: 4 } })
  t.equal(tooLongSource.status, 422)
  t.match(tooLongSource.body.error, /the source \(\d+ tokens\) exceeds the encoder's 64 positions/)
})
