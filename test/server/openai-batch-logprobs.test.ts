/**
 * What OpenAI clients send beyond one prompt, driven by the official `openai`
 * client against a real server: several prompts in one completions request,
 * `logprobs: k` with real alternatives, echo with the prompt's tokens scored,
 * and chat's logprobs with top_logprobs. Values are checked against the
 * project's plain-TypeScript reference forward pass of stories260K with PEFT's
 * dog-max prefix (within 1e-4), tokens against PEFT's own greedy output.
 */
import t from 'tap'
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import type { FastifyInstance } from 'fastify'
import { TextTokenizer } from '../../src/engine/tokenizer.js'
import { ChatTemplate } from '../../src/server/openai/chat-template.js'
import { listenOnLoopback, startApp } from '../helpers/app.js'
import { completionTexts } from '../helpers/completion-text.js'
import { referenceForward } from '../helpers/reference-forward.js'
import { loadStoriesPrefix, loadStoriesWeights } from '../helpers/reference-stories.js'
import { readExpected, storiesModelDir, storiesPrefixesDir } from '../helpers/shared-data.js'

const TOLERANCE = 1e-4
const dogDir = join(storiesPrefixesDir, 'dog-max')
const dog = readExpected(join(dogDir, 'expected.json'))
const completion = await completionTexts(storiesModelDir)
const weights = loadStoriesWeights()
const prefix = loadStoriesPrefix('dog-max', weights.dims)
const P = prefix.numVirtualTokens

/** Reference log-softmax at every position of prompt + generated, with dog-max as PEFT places it (positions from P). */
function referenceLogprobs(ids: number[]): number[][] {
  const logits = referenceForward(weights, ids, ids.map((_, i) => P + i), prefix)
  return logits.map((row) => {
    const max = Math.max(...row)
    const norm = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0))
    return Array.from(row, (x) => x - norm)
  })
}

/** The k largest values, largest first. */
const topValues = (row: number[], k: number) => [...row].sort((a, b) => b - a).slice(0, k)
const close = (a: number, b: number) => Math.abs(a - b) <= TOLERANCE

const prefixDir = mkdtempSync(join(tmpdir(), 'prefixd-batch-logprobs-'))
t.teardown(() => rmSync(prefixDir, { recursive: true, force: true }))
symlinkSync(dogDir, join(prefixDir, 'dog-max'))

async function listen(app: FastifyInstance): Promise<OpenAI> {
  return new OpenAI({ baseURL: `${await listenOnLoopback(app)}/v1`, apiKey: 'not-checked', maxRetries: 0 })
}

const client = await listen(await startApp(t, storiesModelDir, { PREFIX_DIR: prefixDir }))

t.test('an array of prompts: n choices per prompt, numbered as OpenAI does, usage summed', async (t) => {
  const cases = dog.cases.slice(0, 3)
  const maxTokens = 8
  const first = (c: (typeof cases)[number]) => completion({ prompt_ids: c.prompt_ids, generated_ids: c.generated_ids.slice(0, maxTokens) })
  const r = await client.completions.create({ model: 'dog-max', prompt: cases.map((c) => c.prompt), n: 2, max_tokens: maxTokens, temperature: 0 })
  t.same(r.choices.map((c) => c.index), [0, 1, 2, 3, 4, 5])
  r.choices.forEach((choice) => t.equal(choice.text, first(cases[Math.floor(choice.index / 2)]), `choice ${choice.index}`))
  const promptTokens = cases.reduce((n, c) => n + c.prompt_ids.length, 0)
  t.same(r.usage, { prompt_tokens: promptTokens, completion_tokens: 6 * maxTokens, total_tokens: promptTokens + 6 * maxTokens })

  const stream = await client.completions.create({
    model: 'dog-max', prompt: cases.map((c) => c.prompt), max_tokens: maxTokens, temperature: 0, echo: true, stream: true, stream_options: { include_usage: true },
  })
  const texts = new Map<number, string>()
  let usage: OpenAI.CompletionUsage | null | undefined
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage
    for (const ch of chunk.choices) texts.set(ch.index, (texts.get(ch.index) ?? '') + ch.text)
  }
  t.same([...texts.keys()].sort(), [0, 1, 2])
  cases.forEach((c, i) => t.equal(texts.get(i), c.prompt + first(c), `streamed choice ${i}, echo first`))
  t.equal(usage?.prompt_tokens, promptTokens)

  // 16 prompts × 16 choices are 256 engine requests: more than one tenant may queue (64 by default).
  const tooMany = client.completions.create({ model: 'dog-max', prompt: Array(16).fill('One day,'), n: 16, max_tokens: 2, temperature: 0 })
  await t.rejects(tooMany, { status: 429 } as unknown as Error, 'beyond the queue limits the request fails as a whole')
  const after = await client.completions.create({ model: 'dog-max', prompt: ['One day,'], max_tokens: 2, temperature: 0 })
  t.equal(after.choices.length, 1, 'and the server serves the next one')
})

t.test('logprobs: k with echo: prompt and generated tokens scored as the reference forward pass, top k real', async (t) => {
  const k = 5
  for (const c of dog.cases.slice(0, 2)) {
    const maxTokens = 10
    const generated = c.generated_ids.slice(0, maxTokens)
    const r = await client.completions.create({ model: 'dog-max', prompt: c.prompt, max_tokens: maxTokens, temperature: 0, logprobs: k, echo: true })
    const choice = r.choices[0]
    const text = c.prompt + completion({ prompt_ids: c.prompt_ids, generated_ids: generated })
    t.equal(choice.text, text)
    const lp = choice.logprobs!
    const ids = [...c.prompt_ids, ...generated]
    t.equal(lp.tokens!.length, ids.length, 'one entry per prompt and generated token')
    t.equal(lp.tokens!.join(''), text, 'token texts add up to the text')
    lp.tokens!.forEach((tok, j) => t.equal(text.slice(lp.text_offset![j], lp.text_offset![j] + tok.length), tok))
    t.equal(lp.token_logprobs![0], null, "the prompt's first token is not scored")
    t.equal(lp.top_logprobs![0], null)

    const reference = referenceLogprobs(ids)
    let worst = 0
    for (let j = 1; j < ids.length; j++) {
      const want = reference[j - 1]
      const got = lp.token_logprobs![j]!
      worst = Math.max(worst, Math.abs(got - want[ids[j]]))
      const top = Object.values(lp.top_logprobs![j]!).sort((a, b) => b - a)
      t.ok(top.length >= k && top.length <= k + 1, `position ${j}: ${top.length} entries`)
      const wantTop = topValues(want, k)
      t.ok(wantTop.every((v, i) => close(top[i], v)), `position ${j}: top ${k} = the reference's ${JSON.stringify(wantTop)}`)
      t.ok(Object.values(lp.top_logprobs![j]!).some((v) => close(v, got)), `position ${j}: the chosen token is listed`)
    }
    t.ok(worst <= TOLERANCE, `${c.prompt}: every token logprob within ${TOLERANCE} of the reference (worst ${worst.toExponential(2)})`)
    // Greedy: each generated token is the most likely one.
    for (let j = c.prompt_ids.length; j < ids.length; j++) t.ok(close(lp.token_logprobs![j]!, topValues(reference[j - 1], 1)[0]))
  }
})

t.test('streamed logprobs: k: the echo chunk carries the prompt scores, each token its alternatives', async (t) => {
  const c = dog.cases[3]
  const stream = await client.completions.create({ model: 'dog-max', prompt: c.prompt, max_tokens: 6, temperature: 0, logprobs: 2, echo: true, stream: true })
  const entries: Array<{ token: string; logprob: number | null; top: Record<string, number> | null }> = []
  for await (const chunk of stream) {
    for (const ch of chunk.choices) {
      const lp = ch.logprobs!
      lp.tokens!.forEach((token, i) => entries.push({ token, logprob: lp.token_logprobs![i], top: lp.top_logprobs![i] }))
    }
  }
  const ids = [...c.prompt_ids, ...c.generated_ids.slice(0, 6)]
  t.equal(entries.length, ids.length)
  t.equal(entries[0].logprob, null)
  const reference = referenceLogprobs(ids)
  for (let j = 1; j < ids.length; j++) {
    t.ok(close(entries[j].logprob!, reference[j - 1][ids[j]]), `token ${j}`)
    t.ok(Object.keys(entries[j].top!).length >= 2, `token ${j}: two alternatives at least`)
  }
})

t.test('chat: logprobs with top_logprobs on stories260K given a chat template, against the reference', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'prefixd-chat-stories-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const name of readdirSync(storiesModelDir)) if (name.includes('.')) copyFileSync(join(storiesModelDir, name), join(dir, name))
  const config = JSON.parse(readFileSync(join(storiesModelDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>
  config.chat_template = '{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}'
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config))
  const chat = await listen(await startApp(t, dir, { PREFIX_DIR: prefixDir }))
  const k = 3
  const messages = [{ role: 'user' as const, content: 'Once upon a time, there was a' }]
  const r = await chat.chat.completions.create({ model: 'dog-max', messages, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: k })

  const template = (await ChatTemplate.load(dir))!
  const promptIds = (await TextTokenizer.load(dir, 1)).encode(template.render(messages))
  const content = r.choices[0].logprobs!.content!
  t.equal(content.length, 8)
  t.equal(content.map((x) => x.token).join(''), r.choices[0].message.content, 'token texts add up to the message')
  // The generated ids are not in the answer; greedy makes them the reference's argmax at each step.
  const ids = [...promptIds]
  const reference: number[][] = []
  for (let i = 0; i < 8; i++) {
    const row = referenceLogprobs(ids).at(-1)!
    reference.push(row)
    ids.push(row.indexOf(Math.max(...row)))
  }
  content.forEach((x, i) => {
    t.ok(close(x.logprob, topValues(reference[i], 1)[0]), `token ${i}: logprob ${x.logprob}`)
    t.equal(x.top_logprobs.length, k)
    t.ok(x.top_logprobs.every((alt, j) => close(alt.logprob, topValues(reference[i], k)[j])), `token ${i}: top ${k} as the reference`)
    t.same(x.top_logprobs[0].bytes, [...Buffer.from(x.top_logprobs[0].token, 'utf8')])
  })
  t.equal(r.choices[0].message.content, completion({ prompt_ids: promptIds, generated_ids: ids.slice(promptIds.length) }))
})
