/**
 * POST /, TGI's root route, driven by Hugging Face's own Python client
 * (huggingface_hub's InferenceClient with base_url, pinned, installed into a
 * venv under .cache/ on first run) against a real server on loopback with API
 * keys: stories260K with PEFT's dog-max adapter gives PEFT's greedy tokens and
 * the completion text with its leading space, streamed or not, with details or
 * not. Errors, auth and metrics are those of /generate.
 */
import t from 'tap'
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hashKey } from '../../src/auth/api-keys.js'
import { listenOnLoopback, startApp } from '../helpers/app.js'
import { completionTexts } from '../helpers/completion-text.js'
import { sampleValue } from '../helpers/prom-text.js'
import { hfTextGeneration, type PythonResult } from '../helpers/python-client.js'
import { readExpected, storiesModelDir, storiesPrefixesDir } from '../helpers/shared-data.js'
import { parseEvents } from '../helpers/sse.js'

const KEY = 'pk-root-route-test'
const dogDir = join(storiesPrefixesDir, 'dog-max')
const dog = readExpected(join(dogDir, 'expected.json'))
const base = readExpected(join(storiesModelDir, 'expected-base.json'))
const completion = await completionTexts(storiesModelDir)

const prefixDir = mkdtempSync(join(tmpdir(), 'prefixd-root-'))
t.teardown(() => rmSync(prefixDir, { recursive: true, force: true }))
symlinkSync(dogDir, join(prefixDir, 'dog-max'))

const app = await startApp(t, storiesModelDir, { PREFIX_DIR: prefixDir, API_KEYS: `acme:tenant:${hashKey(KEY)}` })
const url = await listenOnLoopback(app)

function ok(r: PythonResult): any {
  if ('error' in r) throw new Error(`the Python client failed: ${r.error}: ${r.message}`)
  return r.ok
}

t.test('huggingface_hub InferenceClient(base_url).text_generation: plain, details, streamed, with adapter_id', async (t) => {
  const [c0, c1] = dog.cases
  const b = base.cases[2]
  const results = await hfTextGeneration(url, KEY, [
    { prompt: c0.prompt, adapter_id: 'dog-max', max_new_tokens: c0.generated_ids.length },
    { prompt: c1.prompt, adapter_id: 'dog-max', max_new_tokens: c1.generated_ids.length, details: true },
    { prompt: b.prompt, max_new_tokens: b.generated_ids.length, stream: true },
    { prompt: c1.prompt, adapter_id: 'dog-max', max_new_tokens: c1.generated_ids.length, stream: true, details: true },
    { prompt: c0.prompt, adapter_id: 'dog-max', max_new_tokens: 6, return_full_text: true },
    { prompt: c0.prompt, adapter_id: 'nope', max_new_tokens: 4 },
    { prompt: c0.prompt, adapter_id: 'dog-max', max_new_tokens: 0 },
  ])
  t.equal(ok(results[0]), completion(c0), 'text only: the completion, leading space kept')

  const detailed = ok(results[1])
  t.equal(detailed.generated_text, completion(c1))
  t.same(detailed.details.tokens.map((x: { id: number }) => x.id), c1.generated_ids, "PEFT's greedy tokens")
  t.equal(detailed.details.finish_reason, 'length')
  t.equal(detailed.details.generated_tokens, c1.generated_ids.length)

  const streamed = ok(results[2]) as string[]
  t.equal(streamed.length, b.generated_ids.length, 'one text per token')
  t.equal(streamed.join(''), completion(b), 'streamed texts add up to the completion')

  const events = ok(results[3]) as Array<{ token: { id: number; text: string }; generated_text: string | null; details: { finish_reason: string } | null }>
  t.same(events.map((e) => e.token.id), c1.generated_ids)
  t.equal(events.at(-1)!.generated_text, completion(c1))
  t.equal(events.at(-1)!.details!.finish_reason, 'length')
  t.ok(events.slice(0, -1).every((e) => e.generated_text === null))

  const six = { prompt_ids: c0.prompt_ids, generated_ids: c0.generated_ids.slice(0, 6) }
  t.equal(ok(results[4]), c0.prompt + completion(six), 'return_full_text: prompt + completion')

  t.match(results[5], { error: /Error/, message: /prefix 'nope' not found/ }, 'a missing prefix reaches the client as its error')
  t.match(results[6], { error: /Error/, message: /max_new_tokens/ }, 'validation errors name the field')
})

t.test('the wire format: an array of one /generate answer, or /generate_stream events', async (t) => {
  const c = dog.cases[2]
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }
  const body = { inputs: c.prompt, parameters: { adapter_id: 'dog-max', max_new_tokens: 5, details: true } }
  const plain = await fetch(`${url}/`, { method: 'POST', headers, body: JSON.stringify(body) })
  t.equal(plain.status, 200)
  const array = (await plain.json()) as Array<{ generated_text: string; details: { tokens: Array<{ id: number }> } }>
  t.equal(array.length, 1)
  t.same(array[0].details.tokens.map((x) => x.id), c.generated_ids.slice(0, 5))
  const generate = await fetch(`${url}/generate`, { method: 'POST', headers, body: JSON.stringify(body) })
  t.same(array[0], await generate.json(), 'the same answer as /generate')
  t.equal(plain.headers.get('x-generated-tokens'), '5')

  const streamed = await fetch(`${url}/`, { method: 'POST', headers, body: JSON.stringify({ ...body, stream: true }) })
  t.match(streamed.headers.get('content-type'), /text\/event-stream/)
  const events = parseEvents(await streamed.text()) as Array<{ index: number; token: { id: number } }>
  t.same(events.map((e) => e.token.id), c.generated_ids.slice(0, 5))
  t.same(events.map((e) => e.index), [1, 2, 3, 4, 5])

  const unknown = await fetch(`${url}/`, { method: 'POST', headers, body: JSON.stringify({ ...body, streaming: true }) })
  t.equal(unknown.status, 422)
  t.match(await unknown.json(), { error: /streaming/, error_type: 'validation' })
  const notBool = await fetch(`${url}/`, { method: 'POST', headers, body: JSON.stringify({ ...body, stream: 'yes' }) })
  t.equal(notBool.status, 422, 'no coercion: "yes" is not a boolean')
  const missing = await fetch(`${url}/`, { method: 'POST', headers, body: JSON.stringify({ inputs: 'x', parameters: { prefix_id: 'nope' }, stream: true }) })
  t.equal(missing.status, 404, 'an error before streaming starts is a plain JSON answer')
  t.match(await missing.json(), { error_type: 'not_found' })
})

t.test('auth and metrics as on /generate', async (t) => {
  const anonymous = await fetch(`${url}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: 'x' }) })
  t.equal(anonymous.status, 401)
  const [denied] = await hfTextGeneration(url, 'wrong-key', [{ prompt: 'x', max_new_tokens: 2 }])
  t.match(denied, { error: /Error/, message: /401|API key/ }, 'a wrong key fails in the client')
  const metrics = await (await fetch(`${url}/metrics`)).text()
  const served = sampleValue(metrics, 'prefixd_requests_total', { prefix: 'dog-max', tenant: 'acme', outcome: 'success' })
  t.ok(served !== undefined && served >= 4, `dog-max requests by the root route are counted (${served})`)
})
