/**
 * Every error known before the first token is a plain HTTP error: a stream
 * refused because the queue is full answers 429 overloaded as JSON, on
 * /generate_stream and on streamed /v1/completions, as /generate does.
 */
import t from 'tap'
import { request } from 'undici'
import { startApp } from '../helpers/app.js'
import { readEvents } from '../helpers/sse.js'
import { generatedModel } from '../helpers/tiny-model.js'

// One running slot and no waiting room: while one request runs, the next is refused.
const app = await startApp(t, await generatedModel('llama'), { MAX_BATCH_SIZE: 1, MAX_WAITING_REQUESTS: 0, MAX_WAITING_PER_TENANT: 0 })
const base = await app.listen({ host: '127.0.0.1', port: 0 })
const post = (path: string, body: unknown) =>
  request(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

/** Starts a long stream and resolves once the engine runs it (its first event has arrived). */
async function occupySlot() {
  const res = await post('/generate_stream', { inputs: 'a', parameters: { max_new_tokens: 240 } })
  const it = res.body[Symbol.asyncIterator]()
  await it.next()
  return { drain: async () => void (await readEvents({ [Symbol.asyncIterator]: () => it })) }
}

const refused: Array<[string, unknown]> = [
  ['/generate_stream', { inputs: 'b', parameters: { max_new_tokens: 4 } }],
  ['/v1/completions', { model: app.modelId, prompt: 'b', max_tokens: 4, stream: true }],
  ['/v1/completions', { model: app.modelId, prompt: 'b', max_tokens: 4, stream: true, echo: true }],
]

for (const [path, body] of refused) {
  t.test(`${path} ${JSON.stringify(body)} with the queue full: 429 as JSON`, async (t) => {
    const slot = await occupySlot()
    const res = await post(path, body)
    const text = await res.body.text()
    await slot.drain()
    t.equal(res.statusCode, 429, text)
    t.match(res.headers['content-type'], /^application\/json/)
    const json = JSON.parse(text) as { error_type?: string; error?: { type?: string; code?: string } }
    if (path === '/generate_stream') t.equal(json.error_type, 'overloaded')
    else t.equal(json.error?.type, 'rate_limit_error')
  })
}

t.test('an accepted stream still opens with 200 and its held first chunks', async (t) => {
  const res = await post('/v1/completions', { model: app.modelId, prompt: 'hello', max_tokens: 3, stream: true, echo: true })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /text\/event-stream/)
  const events = (await readEvents(res.body)) as Array<{ choices?: Array<{ text: string }> } | string>
  t.equal((events[0] as { choices: Array<{ text: string }> }).choices[0].text, 'hello', 'the echo chunk comes first')
  t.equal(events.at(-1), '[DONE]')
  t.equal(events.length, 1 + 3 + 1, 'echo, three tokens, [DONE]')
})
