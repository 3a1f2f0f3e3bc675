/**
 * POST /generate_stream over a real socket, and what continuous batching owes
 * its clients: TGI's event format, a disconnect that frees the slot, 429 when
 * the queue is full, and deadlines.
 */
import t from 'tap'
import { join } from 'node:path'
import { request } from 'undici'
import { listenOnLoopback, startApp, type TestLike } from '../helpers/app.js'
import { readEvents } from '../helpers/sse.js'
import { completionTexts } from '../helpers/completion-text.js'
import { readExpected, storiesModelDir, storiesPrefixesDir, storiesPrefixStore } from '../helpers/shared-data.js'

interface StreamEvent {
  index: number
  token: { id: number; text: string; logprob: number; special: boolean }
  generated_text: string | null
  details: { finish_reason: string; generated_tokens: number; seed: number | null } | null
  error?: string
  error_type?: string
}

async function listen(t: TestLike, config: Parameters<typeof startApp>[2]) {
  const app = await startApp(t, storiesModelDir, { PREFIX_DIR: storiesPrefixStore(t), ...config })
  const address = await listenOnLoopback(app)
  return { app, url: (path: string) => `${address}${path}` }
}

const post = (url: string, body: unknown) =>
  request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

t.test('events in TGI format; tokens equal PEFT greedy; text adds up', async (t) => {
  const { url } = await listen(t, {})
  const c = readExpected(join(storiesPrefixesDir, 'robot-benny', 'expected.json')).cases[0]
  const res = await post(url('/generate_stream'), {
    inputs: c.prompt,
    parameters: { prefix_id: 'robot-benny', max_new_tokens: c.generated_ids.length },
  })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /text\/event-stream/)
  const events = (await readEvents(res.body)) as StreamEvent[]
  t.equal(events.length, c.generated_ids.length)
  t.same(events.map((e) => e.index), events.map((_, i) => i + 1))
  t.same(events.map((e) => e.token.id), c.generated_ids)
  t.ok(events.slice(0, -1).every((e) => e.generated_text === null && e.details === null))
  const last = events.at(-1)!
  t.equal(last.generated_text, (await completionTexts(storiesModelDir))(c))
  t.ok(events[0].token.text.startsWith(' '), 'the first token keeps its leading space')
  t.equal(last.details!.finish_reason, 'length')
  t.equal(last.details!.generated_tokens, c.generated_ids.length)
  t.equal(events.map((e) => e.token.text).join(''), last.generated_text, 'token texts concatenate to generated_text')

  const bad = await post(url('/generate_stream'), { inputs: 'x', parameters: { prefix_id: 'missing' } })
  t.equal(bad.statusCode, 404, 'errors before the stream starts are plain JSON')
  t.equal(((await bad.body.json()) as { error_type: string }).error_type, 'not_found')
})

t.test('a client that disconnects cancels its request and frees its slot', async (t) => {
  const { app, url } = await listen(t, { MAX_BATCH_SIZE: 1 })
  const controller = new AbortController()
  const res = await request(url('/generate_stream'), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: 'Once upon a time', parameters: { max_new_tokens: 480 } }),
    signal: controller.signal,
  })
  const stepsBefore = app.engine.stats.steps
  // Read one event, then hang up.
  for await (const _chunk of res.body) break
  controller.abort()
  await new Promise<void>((resolve) => {
    const check = () => (app.engine.stats.running === 0 && app.engine.stats.waiting === 0 ? resolve() : setTimeout(check, 5))
    check()
  })
  t.ok(app.engine.stats.steps - stepsBefore < 480, `stopped after ${app.engine.stats.steps - stepsBefore} of 480 steps`)
  // The slot is free: a batch of one serves the next request.
  const next = await post(url('/generate'), { inputs: 'Once upon a time', parameters: { max_new_tokens: 3 } })
  t.equal(next.statusCode, 200)
})

t.test('a full queue answers 429 "overloaded" at once', async (t) => {
  const { url } = await listen(t, { MAX_BATCH_SIZE: 1, MAX_WAITING_REQUESTS: 1 })
  const long = () => post(url('/generate'), { inputs: 'Once upon a time', parameters: { max_new_tokens: 400 } })
  const replies = await Promise.all([long(), long(), long(), long()])
  const statuses = replies.map((r) => r.statusCode).sort()
  const bodies = await Promise.all(replies.map((r) => r.body.json() as Promise<{ error_type?: string }>))
  t.ok(statuses.filter((s) => s === 200).length >= 2, `statuses ${statuses}`)
  t.ok(statuses.includes(429), `statuses ${statuses}`)
  for (const [i, r] of replies.entries()) if (r.statusCode === 429) t.equal(bodies[i].error_type, 'overloaded')
})

t.test('a request that waits or runs past its deadline ends with a clear error', async (t) => {
  const { url } = await listen(t, { MAX_BATCH_SIZE: 1, REQUEST_TIMEOUT_MS: 20 })
  const replies = await Promise.all(
    Array.from({ length: 6 }, () => post(url('/generate'), { inputs: 'Once upon a time', parameters: { max_new_tokens: 480 } })),
  )
  const bodies = (await Promise.all(replies.map((r) => r.body.json()))) as Array<{ error_type?: string; error?: string }>
  const expired = replies.filter((r) => r.statusCode === 504)
  t.ok(expired.length >= 1, 'at least the queued requests expire')
  for (const [i, r] of replies.entries()) {
    if (r.statusCode !== 200) {
      t.equal(r.statusCode, 504)
      t.equal(bodies[i].error_type, 'deadline_exceeded')
      t.match(bodies[i].error, /deadline/)
    }
  }
  // A stream that expires mid-way ends with an error event.
  const res = await post(url('/generate_stream'), { inputs: 'Once upon a time', parameters: { max_new_tokens: 480 } })
  const events = (await readEvents(res.body)) as StreamEvent[]
  const last = events.at(-1)!
  if (res.statusCode === 200 && last.error_type !== undefined) t.equal(last.error_type, 'deadline_exceeded')
  else t.equal(res.statusCode, 200)
})
