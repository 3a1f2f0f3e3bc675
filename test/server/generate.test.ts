/**
 * POST /generate end to end on the real stories260K model with the real PEFT
 * adapters as the store folder: PEFT's greedy outputs through HTTP, sampling
 * and stop sequences, and every input error.
 */
import t from 'tap'
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildPeftAdapter, PICKLE_BYTES } from '../helpers/prefix-fixtures.js'
import { completionTexts } from '../helpers/completion-text.js'
import { readExpected, storiesModelDir, storiesPrefixesDir } from '../helpers/shared-data.js'
import { startApp, type GenerateReply } from '../helpers/app.js'

// A store folder beside the real adapters (linked, never copied) holding
// prefixes that must be refused.
const store = mkdtempSync(join(tmpdir(), 'prefixd-store-'))
t.teardown(() => rmSync(store, { recursive: true, force: true }))
for (const name of ['dog-max', 'robot-benny']) symlinkSync(join(storiesPrefixesDir, name), join(store, name))
const wrongShape = buildPeftAdapter({ layers: 3, kvHeads: 2, headDim: 16, P: 4 })
mkdirSync(join(store, 'wrong-shape'))
writeFileSync(join(store, 'wrong-shape', 'adapter_config.json'), wrongShape.configJson)
writeFileSync(join(store, 'wrong-shape', 'adapter_model.safetensors'), wrongShape.safetensors)
mkdirSync(join(store, 'pickled'))
writeFileSync(join(store, 'pickled', 'adapter_config.json'), wrongShape.configJson)
writeFileSync(join(store, 'pickled', 'adapter_model.bin'), PICKLE_BYTES)

const app = await startApp(t, storiesModelDir, { PREFIX_DIR: store })
const completion = await completionTexts(storiesModelDir)

async function generate(body: unknown) {
  const res = await app.inject({ method: 'POST', url: '/generate', payload: body as object })
  return { status: res.statusCode, body: res.json() as GenerateReply & { error?: string; error_type?: string }, headers: res.headers }
}

t.test('greedy outputs through HTTP equal PEFT and transformers', async (t) => {
  const base = readExpected(join(storiesModelDir, 'expected-base.json'))
  for (const c of base.cases) {
    const r = await generate({ inputs: c.prompt, parameters: { max_new_tokens: c.generated_ids.length, details: true } })
    t.equal(r.status, 200)
    t.same(r.body.details!.tokens.map((x) => x.id), c.generated_ids, `base: ${c.prompt}`)
    t.equal(r.body.generated_text, completion(c))
    t.equal(r.body.details!.finish_reason, 'length')
    t.equal(r.body.details!.seed, null, 'greedy reports no seed')
  }
  for (const name of ['dog-max', 'robot-benny']) {
    const expected = readExpected(join(storiesPrefixesDir, name, 'expected.json'))
    // All cases at once: they share forward passes, as the batching issue requires.
    const replies = await Promise.all(
      expected.cases.map((c) =>
        generate({ inputs: c.prompt, parameters: { prefix_id: name, max_new_tokens: c.generated_ids.length, details: true } }),
      ),
    )
    expected.cases.forEach((c, i) => {
      t.same(replies[i].body.details!.tokens.map((x) => x.id), c.generated_ids, `${name}: ${c.prompt}`)
      t.equal(replies[i].body.generated_text, completion(c))
      t.same(replies[i].body.details!.prefix_id, [name])
      t.equal(replies[i].headers['x-prefix-id'], name)
    })
  }
})

t.test('adapter_id is another name for prefix_id; nulls mean "not set"', async (t) => {
  const c = readExpected(join(storiesPrefixesDir, 'dog-max', 'expected.json')).cases[0]
  const r = await generate({
    inputs: c.prompt,
    parameters: { adapter_id: 'dog-max', prefix_id: null, max_new_tokens: 12, temperature: null, details: true },
  })
  t.equal(r.status, 200)
  t.same(r.body.details!.tokens.map((x) => x.id), c.generated_ids.slice(0, 12))
  const full = await generate({ inputs: c.prompt, parameters: { prefix_id: 'dog-max', max_new_tokens: 5, return_full_text: true } })
  const five = { prompt_ids: c.prompt_ids, generated_ids: c.generated_ids.slice(0, 5) }
  t.equal(full.body.generated_text, c.prompt + completion(five), 'return_full_text: prompt + completion, the space between kept')
})

t.test('sampling: a seed reproduces its output and is reported', async (t) => {
  const params = { max_new_tokens: 24, do_sample: true, temperature: 1.3, top_k: 40, top_p: 0.95, seed: 1234, details: true }
  const a = await generate({ inputs: 'Once upon a time', parameters: { ...params, prefix_id: 'robot-benny' } })
  const b = await generate({ inputs: 'Once upon a time', parameters: { ...params, prefix_id: 'robot-benny' } })
  const c = await generate({ inputs: 'Once upon a time', parameters: { ...params, prefix_id: 'robot-benny', seed: 99 } })
  t.equal(a.status, 200)
  t.equal(a.body.details!.seed, 1234)
  t.same(a.body.details!.tokens.map((x) => x.id), b.body.details!.tokens.map((x) => x.id))
  t.not(JSON.stringify(a.body.details!.tokens.map((x) => x.id)), JSON.stringify(c.body.details!.tokens.map((x) => x.id)))
  for (const tok of a.body.details!.tokens) t.ok(tok.logprob <= 0 && Number.isFinite(tok.logprob))
})

t.test('stop sequences end generation', async (t) => {
  const c = readExpected(join(storiesModelDir, 'expected-base.json')).cases[0]
  // "little girl named Lily. She loved ...": stop at the first "Lily".
  const r = await generate({ inputs: c.prompt, parameters: { max_new_tokens: 40, stop: ['Lily'], details: true } })
  t.equal(r.body.details!.finish_reason, 'stop_sequence')
  t.ok(r.body.generated_text.endsWith('Lily'), r.body.generated_text)
  t.ok(completion(c).startsWith(r.body.generated_text))
  t.ok(r.body.details!.generated_tokens < 40)
})

t.test('input errors are 4xx with a message naming the problem', async (t) => {
  const cases: Array<[string, unknown, number, string, RegExp]> = [
    ['unknown prefix', { inputs: 'x', parameters: { prefix_id: 'nope' } }, 404, 'not_found', /nope/],
    ['string for an integer', { inputs: 'x', parameters: { max_new_tokens: '7' } }, 422, 'validation', /max_new_tokens/],
    ['null for a required string', { inputs: null }, 422, 'validation', /inputs/],
    ['unknown field', { inputs: 'x', parameters: { max_tokens: 3 } }, 422, 'validation', /max_tokens/],
    ['unknown top-level field', { inputs: 'x', stream: true }, 422, 'validation', /stream/],
    ['missing inputs', { parameters: {} }, 422, 'validation', /inputs/],
    ['zero max_new_tokens', { inputs: 'x', parameters: { max_new_tokens: 0 } }, 422, 'validation', /max_new_tokens/],
    ['top_p above 1', { inputs: 'x', parameters: { top_p: 1.5 } }, 422, 'validation', /top_p/],
    ['negative temperature', { inputs: 'x', parameters: { temperature: -1 } }, 422, 'validation', /temperature/],
    ['path in a prefix id', { inputs: 'x', parameters: { prefix_id: '../etc' } }, 422, 'validation', /prefix_id/],
    ['prompt + max_new_tokens beyond positions', { inputs: 'x', parameters: { max_new_tokens: 600 } }, 422, 'validation', /512 positions/],
    ['prefix + prompt beyond positions', { inputs: 'Once '.repeat(200), parameters: { prefix_id: 'robot-benny', max_new_tokens: 300 } }, 422, 'validation', /prefix \(16\)/],
    ['prefix for another model shape', { inputs: 'x', parameters: { prefix_id: 'wrong-shape' } }, 422, 'prefix_mismatch', /3 layers, the model has 5/],
    ['pickled adapter', { inputs: 'x', parameters: { prefix_id: 'pickled' } }, 422, 'invalid_prefix', /pickle/],
    ['conflicting prefix_id and adapter_id', { inputs: 'x', parameters: { prefix_id: 'dog-max', adapter_id: 'robot-benny' } }, 422, 'validation', /adapter_id/],
    ['too many stop sequences', { inputs: 'x', parameters: { stop: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'] } }, 422, 'validation', /stop/],
  ]
  for (const [label, body, status, type, message] of cases) {
    const r = await generate(body)
    t.equal(r.status, status, label)
    t.equal(r.body.error_type, type, label)
    t.match(r.body.error, message, label)
  }
  const bad = await app.inject({ method: 'POST', url: '/generate', headers: { 'content-type': 'application/json' }, payload: '{"inputs":' })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().error_type, 'validation')
  const missing = await app.inject({ method: 'GET', url: '/nowhere' })
  t.equal(missing.statusCode, 404)
})

t.test('/health and /info answer while a long generation runs', async (t) => {
  let finished = false
  const long = Promise.all(
    Array.from({ length: 8 }, () => generate({ inputs: 'Once upon a time', parameters: { max_new_tokens: 400, prefix_id: 'dog-max' } })),
  ).then((r) => {
    finished = true
    return r
  })
  // Wait until the engine is generating, then ask for health.
  while (app.engine.stats.running === 0 && !finished) await new Promise((r) => setTimeout(r, 5))
  const health = await app.inject({ method: 'GET', url: '/health' })
  t.equal(health.statusCode, 200)
  t.equal(finished, false, '/health answered before the generation finished')
  const info = await app.inject({ method: 'GET', url: '/info' })
  t.equal(info.json().num_layers, 5)
  t.equal(info.json().num_key_value_heads, 4)
  const replies = await long
  for (const r of replies) t.equal(r.status, 200)
})
