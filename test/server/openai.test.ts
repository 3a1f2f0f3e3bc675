/**
 * The OpenAI-compatible API driven by the official `openai` client, and the
 * TGI routes by Hugging Face's @huggingface/inference client, both against a
 * real server on loopback: stories260K with PEFT's dog-max adapter gives
 * PEFT's own greedy text through either, streamed or not, with and without a
 * prefix. Chat runs end to end on a generated model given a chat template.
 */
import t, { type Test } from 'tap'
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { InferenceClient } from '@huggingface/inference'
import { ChatTemplate } from '../../src/server/openai/chat-template.js'
import { listenOnLoopback, startApp } from '../helpers/app.js'
import { completionTexts } from '../helpers/completion-text.js'
import { readExpected, storiesModelDir, storiesPrefixesDir } from '../helpers/shared-data.js'
import { generatedModel } from '../helpers/tiny-model.js'

const dogDir = join(storiesPrefixesDir, 'dog-max')
const dog = readExpected(join(dogDir, 'expected.json'))
const base = readExpected(join(storiesModelDir, 'expected-base.json'))
/** decode(prompt + generated) - decode(prompt): the text with its leading space. */
const completion = await completionTexts(storiesModelDir)

const prefixDir = mkdtempSync(join(tmpdir(), 'prefixd-openai-'))
t.teardown(() => rmSync(prefixDir, { recursive: true, force: true }))
symlinkSync(dogDir, join(prefixDir, 'dog-max'))

const app = await startApp(t, storiesModelDir, { PREFIX_DIR: prefixDir })
const url = await listenOnLoopback(app)
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'not-checked', maxRetries: 0 })
const modelId = app.modelId

/** t.rejects with an object pattern on the error's own fields (status, code, param). */
const rejects = (t: Test, p: Promise<unknown>, wanted: object | RegExp) => t.rejects(p, wanted as Error)

async function rawPost(path: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, body: await res.json() }
}

t.test('completions: greedy with the dog-max prefix equals PEFT, with usage and logprobs', async (t) => {
  for (const c of dog.cases) {
    const r = await client.completions.create({ model: 'dog-max', prompt: c.prompt, max_tokens: c.generated_ids.length, temperature: 0, logprobs: 1 })
    const choice = r.choices[0]
    t.equal(choice.text, completion(c), c.prompt)
    // The example: "…there was a" continues " dog named Max", space kept ("Lily and Tom" continues "my").
    if (c === dog.cases[0]) t.match(choice.text, /^ dog named Max/)
    t.equal(r.object, 'text_completion')
    t.equal(r.model, 'dog-max')
    t.equal(choice.finish_reason, c.generated_ids.length < 40 ? 'stop' : 'length')
    t.same(r.usage, { prompt_tokens: c.prompt_ids.length, completion_tokens: c.generated_ids.length, total_tokens: c.prompt_ids.length + c.generated_ids.length })
    const lp = choice.logprobs!
    t.equal(lp.tokens!.length, c.generated_ids.length)
    t.equal(lp.tokens!.join(''), completion(c), 'token texts add up to the text')
    t.ok(lp.token_logprobs!.every((x) => x <= 0 && Number.isFinite(x)))
    t.ok(lp.token_logprobs!.some((x) => x < -1e-3), 'log probabilities are computed when asked for')
    t.same(lp.top_logprobs![0], { [lp.tokens![0]]: lp.token_logprobs![0] }, 'top_logprobs holds the chosen token')
    t.equal(lp.text_offset![0], 0)
  }
})

t.test('completions: the base model by its name, an array of one prompt, echo', async (t) => {
  const c = base.cases[0]
  const r = await client.completions.create({ model: modelId, prompt: [c.prompt], max_tokens: c.generated_ids.length, temperature: 0, echo: true })
  t.equal(r.choices[0].text, c.prompt + completion(c))
  const withPrefix = await client.completions.create({ model: 'dog-max', prompt: c.prompt, max_tokens: 8, temperature: 0 })
  t.not(withPrefix.choices[0].text, r.choices[0].text.slice(c.prompt.length, c.prompt.length + withPrefix.choices[0].text.length), 'the prefix changes the text')
  // OpenAI's default max_tokens for completions is 16.
  const short = await client.completions.create({ model: modelId, prompt: c.prompt, temperature: 0 })
  t.equal(short.usage!.completion_tokens, 16)
})

t.test('completions streamed: the same text, finish_reason on the last chunk, usage on request, [DONE]', async (t) => {
  for (const [model, c] of [['dog-max', dog.cases[1]], [modelId, base.cases[1]]] as const) {
    const stream = await client.completions.create({
      model, prompt: c.prompt, max_tokens: c.generated_ids.length, temperature: 0, stream: true, stream_options: { include_usage: true }, logprobs: 0,
    })
    let text = ''
    const reasons: Array<string | null> = []
    let usage: OpenAI.CompletionUsage | undefined | null
    let tokens = 0
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage
      for (const ch of chunk.choices) {
        text += ch.text
        reasons.push(ch.finish_reason)
        tokens += ch.logprobs?.tokens?.length ?? 0
      }
    }
    t.equal(text, completion(c), model)
    t.equal(reasons.at(-1), 'length')
    t.ok(reasons.slice(0, -1).every((x) => x === null))
    t.equal(tokens, c.generated_ids.length, 'logprobs per streamed token')
    t.same(usage, { prompt_tokens: c.prompt_ids.length, completion_tokens: c.generated_ids.length, total_tokens: c.prompt_ids.length + c.generated_ids.length })
  }
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'dog-max', prompt: 'Hi', max_tokens: 3, stream: true, echo: true, temperature: 0 }),
  })
  const body = await res.text()
  t.ok(body.trimEnd().endsWith('data: [DONE]'), 'the stream ends with [DONE]')
  t.match(body, /"text":"Hi"/, 'echo comes first')
})

t.test('completions: stop sequences are cut off as in OpenAI, streamed or not', async (t) => {
  const c = dog.cases[0]
  const at = completion(c).indexOf('Max')
  t.ok(at > 0)
  const r = await client.completions.create({ model: 'dog-max', prompt: c.prompt, max_tokens: 40, temperature: 0, stop: 'Max' })
  t.equal(r.choices[0].text, completion(c).slice(0, at))
  t.equal(r.choices[0].finish_reason, 'stop')
  const stream = await client.completions.create({ model: 'dog-max', prompt: c.prompt, max_tokens: 40, temperature: 0, stop: ['zzz', 'Max'], stream: true })
  let text = ''
  for await (const chunk of stream) text += chunk.choices.map((x) => x.text).join('')
  t.equal(text, completion(c).slice(0, at))
})

t.test('completions: n choices, identical when greedy, seeded samples reproducible', async (t) => {
  const c = dog.cases[2]
  const greedy = await client.completions.create({ model: 'dog-max', prompt: c.prompt, max_tokens: 10, temperature: 0, n: 3 })
  t.same(greedy.choices.map((x) => x.index), [0, 1, 2])
  t.ok(greedy.choices.every((x) => x.text === greedy.choices[0].text))
  t.equal(greedy.usage!.completion_tokens, 30)
  const ask = () => client.completions.create({ model: 'dog-max', prompt: c.prompt, max_tokens: 20, temperature: 1.5, top_p: 0.95, n: 4, seed: 7 })
  const [a, b] = [await ask(), await ask()]
  t.same(a.choices.map((x) => x.text), b.choices.map((x) => x.text), 'same seed, same samples')
  t.ok(new Set(a.choices.map((x) => x.text)).size > 1, 'the choices are independent samples')
  const streamed = await client.completions.create({ model: 'dog-max', prompt: c.prompt, max_tokens: 20, temperature: 1.5, top_p: 0.95, n: 4, seed: 7, stream: true })
  const texts = ['', '', '', '']
  for await (const chunk of streamed) for (const ch of chunk.choices) texts[ch.index] += ch.text
  t.same(texts, a.choices.map((x) => x.text), 'streamed choices are the same samples')
})

t.test('errors in OpenAI shape, naming the field; neutral values of unsupported fields accepted', async (t) => {
  await rejects(t, client.completions.create({ model: 'no-such-prefix', prompt: 'x' }), { status: 404, code: 'model_not_found', param: 'model' })
  await rejects(t, client.completions.create({ model: 'dog-max', prompt: 'x', frequency_penalty: 0.5 }), { status: 400, param: 'frequency_penalty', code: 'unsupported_field' })
  await rejects(t, client.completions.create({ model: 'dog-max', prompt: 'x', presence_penalty: -1 }), { status: 400, param: 'presence_penalty' })
  await rejects(t, client.completions.create({ model: 'dog-max', prompt: Array(17).fill('a') }), { status: 400, param: 'prompt' })
  await rejects(t, client.completions.create({ model: 'dog-max', prompt: 'x', logit_bias: { '5': 1 } }), { status: 400, param: 'logit_bias' })
  await rejects(t, client.completions.create({ model: 'dog-max', prompt: 'x', best_of: 3 }), { status: 400, param: 'best_of' })
  await rejects(t, client.completions.create({ model: 'dog-max', prompt: 'x', suffix: 'end' }), { status: 400, param: 'suffix' })
  await rejects(t, client.completions.create({ model: 'dog-max', prompt: 'x', logprobs: 6 }), { status: 400, param: 'logprobs' })
  const neutral = await client.completions.create({
    model: 'dog-max', prompt: 'x', max_tokens: 2, temperature: 0, frequency_penalty: 0, presence_penalty: 0, logit_bias: {}, user: 'u1', best_of: 1, suffix: '',
  })
  t.equal(neutral.choices.length, 1)

  const unknown = await rawPost('/v1/completions', { model: 'dog-max', prompt: 'x', top_k_typo: 3 })
  t.equal(unknown.status, 400)
  t.same(Object.keys(unknown.body.error).sort(), ['code', 'message', 'param', 'type'])
  t.match(unknown.body.error, { type: 'invalid_request_error', param: 'top_k_typo', code: 'validation', message: /unknown field 'top_k_typo'/ })
  const wrongType = await rawPost('/v1/completions', { model: 'dog-max', prompt: 'x', max_tokens: '7' })
  t.match(wrongType.body.error, { param: 'max_tokens', message: /body\/max_tokens must be integer/ })
  const tooHot = await rawPost('/v1/completions', { model: 'dog-max', prompt: 'x', temperature: 3 })
  t.match(tooHot, { status: 400, body: { error: { param: 'temperature' } } })
  // OpenAI's stop list has TGI's limit, MAX_STOP_SEQUENCES, and names the field (chat shares the check).
  const limit = app.config.MAX_STOP_SEQUENCES
  const stops = (n: number) => Array.from({ length: n }, (_, i) => `zz${i}`)
  const tooManyStops = await rawPost('/v1/completions', { model: 'dog-max', prompt: 'x', stop: stops(limit + 1) })
  t.match(tooManyStops, { status: 400, body: { error: { param: 'stop', code: 'validation', message: new RegExp(`limit is ${limit}`) } } })
  const enoughStops = await rawPost('/v1/completions', { model: 'dog-max', prompt: 'x', max_tokens: 2, temperature: 0, stop: stops(limit) })
  t.equal(enoughStops.status, 200, 'exactly the limit is accepted')
  const tooLong = await rawPost('/v1/completions', { model: 'dog-max', prompt: 'x', max_tokens: 100000 })
  t.match(tooLong, { status: 400, body: { error: { code: 'validation', message: /exceeds the model's/ } } })
  const noRoute = await fetch(`${url}/v1/nothing`)
  t.match(await noRoute.json(), { error: { type: 'not_found_error', code: 'not_found' } })
  // The TGI routes keep their own shape.
  const tgi = await rawPost('/generate', { inputs: 'x', parameters: { prefix_id: 'no-such-prefix' } })
  t.match(tgi, { status: 404, body: { error_type: 'not_found' } })

  const streamedError = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'no-such-prefix', prompt: 'x', stream: true }),
  })
  t.equal(streamedError.status, 404, 'errors found before streaming starts are plain JSON answers')
})

t.test('models: the base model and the prefixes', async (t) => {
  const page = await client.models.list()
  const ids = page.data.map((m) => m.id)
  t.same(ids, [modelId, 'dog-max'])
  t.match(page.data[1], { object: 'model', owned_by: 'anonymous', parent: modelId })
  t.match(await client.models.retrieve('dog-max'), { id: 'dog-max', object: 'model' })
  t.match(await client.models.retrieve(modelId), { id: modelId, owned_by: 'prefixd', parent: null })
  await rejects(t, client.models.retrieve('nope'), { status: 404 })
})

t.test('chat: a model without a chat template says so', async (t) => {
  await rejects(t, client.chat.completions.create({ model: 'dog-max', messages: [{ role: 'user', content: 'hi' }] }), {
    status: 400, code: 'no_chat_template', message: /no chat template/,
  })
})

t.test('Hugging Face client on /generate and /generate_stream, with and without a prefix', async (t) => {
  const hf = new InferenceClient()
  const tgi = hf.endpoint(`${url}/generate`)
  for (const [parameters, c] of [[{ adapter_id: 'dog-max' }, dog.cases[0]], [{ prefix_id: 'dog-max' }, dog.cases[3]], [{}, base.cases[0]]] as const) {
    const r = await tgi.textGeneration({ inputs: c.prompt, parameters: { ...parameters, max_new_tokens: c.generated_ids.length, details: true } })
    t.equal(r.generated_text, completion(c), JSON.stringify(parameters))
  }
  const streaming = hf.endpoint(`${url}/generate_stream`)
  for (const [parameters, c] of [[{ adapter_id: 'dog-max' }, dog.cases[1]], [{}, base.cases[1]]] as const) {
    let text = ''
    let last: string | null | undefined
    for await (const e of streaming.textGenerationStream({ inputs: c.prompt, parameters: { ...parameters, max_new_tokens: c.generated_ids.length } })) {
      text += e.token.text
      last = e.generated_text
    }
    t.equal(last, completion(c), JSON.stringify(parameters))
    t.equal(text, completion(c), 'streamed token texts add up to generated_text')
  }
  // The HF client's `stream: true` is dropped on /generate_stream only; elsewhere it is still an unknown field.
  const strict = await rawPost('/generate', { inputs: 'x', stream: true })
  t.match(strict, { status: 422, body: { error: /unknown field 'stream'/ } })
  await rejects(t, tgi.textGeneration({ inputs: 'x', parameters: { prefix_id: 'nope' } }), /prefix 'nope' not found/)
})

t.test('chat end to end on a generated model with a chat template', async (t) => {
  const src = await generatedModel('llama')
  const dir = mkdtempSync(join(tmpdir(), 'prefixd-chat-model-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const name of readdirSync(src)) if (name !== 'tokenizer_config.json') copyFileSync(join(src, name), join(dir, name))
  const tokenizerConfig = JSON.parse(readFileSync(join(src, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>
  tokenizerConfig.chat_template =
    "{% if messages[0]['role'] == 'assistant' %}{{ raise_exception('the conversation must start with the user') }}{% endif %}" +
    '{{ bos_token }}{% for m in messages %}{% if m.role == \'system\' %}<<SYS>> {{ m.content }} <</SYS>> ' +
    "{% elif m.role == 'user' %}[INST] {{ m.content }} [/INST]{% else %} {{ m.content }}{{ eos_token }}{% endif %}{% endfor %}" +
    '{% if add_generation_prompt %} answer:{% endif %}'
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig))
  const chatApp = await startApp(t, dir, { PREFIX_DIR: mkdtempSync(join(dir, 'prefixes-')) })
  const chatUrl = await listenOnLoopback(chatApp)
  const chat = new OpenAI({ baseURL: `${chatUrl}/v1`, apiKey: 'x', maxRetries: 0 })
  const model = chatApp.modelId
  const messages = [
    { role: 'system' as const, content: 'be brief' },
    { role: 'user' as const, content: [{ type: 'text' as const, text: 'hello' }, { type: 'text' as const, text: ' there' }] },
  ]
  const r = await chat.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0, logprobs: true, top_logprobs: 1 })
  // The same prompt, rendered by hand, through /v1/completions: the template is what the model saw.
  const rendered = '<<SYS>> be brief <</SYS>> [INST] hello there [/INST] answer:'
  const plain = await chat.completions.create({ model, prompt: rendered, max_tokens: 12, temperature: 0 })
  t.equal(r.choices[0].message.content, plain.choices[0].text)
  t.equal(r.choices[0].message.role, 'assistant')
  t.equal(r.object, 'chat.completion')
  t.equal(r.usage!.prompt_tokens, plain.usage!.prompt_tokens)
  const lp = r.choices[0].logprobs!.content!
  t.equal(lp.length, r.usage!.completion_tokens)
  t.same(lp[0].top_logprobs, [{ token: lp[0].token, logprob: lp[0].logprob, bytes: lp[0].bytes }])

  const stream = await chat.chat.completions.create({
    model, messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true }, logprobs: true,
  })
  let content = ''
  let streamedLogprobs = 0
  let role: string | undefined
  let finish: string | null = null
  let usage: OpenAI.CompletionUsage | null | undefined
  for await (const chunk of stream) {
    t.equal(chunk.object, 'chat.completion.chunk')
    if (chunk.usage) usage = chunk.usage
    for (const ch of chunk.choices) {
      role ??= ch.delta.role
      content += ch.delta.content ?? ''
      streamedLogprobs += ch.logprobs?.content?.length ?? 0
      finish = ch.finish_reason ?? finish
    }
  }
  t.equal(content, r.choices[0].message.content)
  t.equal(role, 'assistant')
  t.equal(finish, r.choices[0].finish_reason)
  t.same(usage, r.usage)
  t.equal(streamedLogprobs, r.usage!.completion_tokens, 'one logprob per streamed token')

  const two = await chat.chat.completions.create({ model, messages, max_completion_tokens: 5, temperature: 0, n: 2 })
  t.equal(two.choices.length, 2)
  t.equal(two.choices[0].message.content, two.choices[1].message.content)

  await rejects(t, chat.chat.completions.create({ model, messages: [{ role: 'assistant', content: 'hi' }] }), {
    status: 400, code: 'chat_template', message: /must start with the user/,
  })
  await rejects(t, chat.chat.completions.create({ model, messages, tools: [{ type: 'function', function: { name: 'f' } }] }), { status: 400, param: 'tools' })
  await rejects(t, chat.chat.completions.create({ model, messages, response_format: { type: 'json_object' } }), { status: 400, param: 'response_format' })
  await rejects(t, chat.chat.completions.create({ model, messages, store: true }), { status: 400, param: 'store' })
  await rejects(t, chat.chat.completions.create({ model, messages, tool_choice: 'required' }), { status: 400, param: 'tool_choice' })
  await rejects(t, chat.chat.completions.create({ model, messages, max_tokens: 3, max_completion_tokens: 4 }), { status: 400, param: 'max_completion_tokens' })
  const neutral = await chat.chat.completions.create({
    model, messages, max_tokens: 2, tools: [], tool_choice: 'none', parallel_tool_calls: false, response_format: { type: 'text' }, store: false, presence_penalty: 0,
  })
  t.equal(neutral.choices.length, 1)
  const badRole = await fetch(`${chatUrl}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'wizard', content: 'x' }] }),
  })
  t.match(await badRole.json(), { error: { param: 'messages.0.role' } })
})

t.test('a request past its deadline is a 504 in the OpenAI shape', async (t) => {
  // A deadline of 1 ms: the engine ends every request with deadline_exceeded after it was accepted.
  // Streamed requests refused before their first token are plain HTTP errors too: see
  // test/hostile/refused-streams.test.ts (a full queue makes that certain; a 1 ms deadline races the first token).
  const late = await startApp(t, storiesModelDir, { PREFIX_DIR: prefixDir, REQUEST_TIMEOUT_MS: 1 })
  const lateUrl = await listenOnLoopback(late)
  const lateClient = new OpenAI({ baseURL: `${lateUrl}/v1`, apiKey: 'x', maxRetries: 0 })
  await rejects(t, lateClient.completions.create({ model: 'dog-max', prompt: 'Hi', max_tokens: 30, n: 2 }), { status: 504, code: 'deadline_exceeded', type: 'server_error' })
})

t.test('chat templates: chat_template.jinja beside the config, special tokens as objects, named templates', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'prefixd-template-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  t.equal(await ChatTemplate.load(dir), null, 'no tokenizer_config.json, no template')
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: { content: '<s>' }, eos_token: '</s>' }))
  t.equal(await ChatTemplate.load(dir), null, 'a config without a template')
  writeFileSync(join(dir, 'chat_template.jinja'), '{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}')
  const fromFile = await ChatTemplate.load(dir)
  t.equal(fromFile!.render([{ role: 'user', content: 'hi' }, { role: 'assistant', content: null }]), '<user>hi</s><assistant></s>', 'the leading BOS is dropped')
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D{{ messages|length }}' }] }))
  t.equal((await ChatTemplate.load(dir))!.render([{ role: 'user', content: 'x' }]), 'D1')
  writeFileSync(join(dir, 'tokenizer_config.json'), '{ not json')
  await t.rejects(ChatTemplate.load(dir), SyntaxError)
})
