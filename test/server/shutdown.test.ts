/**
 * SIGTERM on the real process: readiness drops at once, new work gets 503,
 * a stream in flight completes, and the process exits 0. A second signal
 * ends it at once.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { parseEvents } from '../helpers/sse.js'
import { storiesModelDir, storiesPrefixStore } from '../helpers/shared-data.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const tsLoader = fileURLToPath(new URL('../../node_modules/@tapjs/typescript/dist/esm/import.mjs', import.meta.url))

async function startServer(t: { teardown(fn: () => void): void }, env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', tsLoader, 'src/cli.ts', 'serve'], {
    cwd: root,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', MODEL_DIR: storiesModelDir, PREFIX_DIR: storiesPrefixStore(t), ...env },
  })
  t.teardown(() => void child.kill('SIGKILL'))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const base = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d) => {
      out += d
      const m = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
      if (m) resolve(m[1])
    })
    child.on('exit', () => reject(new Error(`server exited before listening: ${out}`)))
  })
  return { child, base, exited }
}

function openStream(base: string, maxNewTokens: number) {
  return request(`${base}/generate_stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: 'Once upon a time', parameters: { prefix_id: 'dog-max', max_new_tokens: maxNewTokens } }),
  })
}

async function readAll(body: AsyncIterable<Buffer>, onFirst: () => void): Promise<string> {
  let text = ''
  let first = true
  for await (const chunk of body) {
    text += chunk.toString()
    if (first) {
      first = false
      onFirst()
    }
  }
  return text
}

t.test('SIGTERM drains: the stream completes, new work gets 503, exit 0', async (t) => {
  const { child, base, exited } = await startServer(t, { SHUTDOWN_TIMEOUT_MS: '30000' })
  const stream = await openStream(base, 300)
  let signalled!: () => void
  const afterSignal = new Promise<void>((resolve) => (signalled = resolve))
  const textP = readAll(stream.body, () => {
    child.kill('SIGTERM')
    signalled()
  })
  await afterSignal
  // Give the signal a moment to land, while the stream is still going.
  await new Promise((r) => setTimeout(r, 20))
  const ready = await request(`${base}/ready`)
  t.equal(ready.statusCode, 503)
  t.match(((await ready.body.json()) as { error: string }).error, /shutting down/)
  const gen = await request(`${base}/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: 'hi' }),
  })
  t.equal(gen.statusCode, 503)
  await gen.body.dump()
  const events = parseEvents(await textP) as Array<{ index: number; generated_text: string | null }>
  t.equal(events.length, 300, 'the stream in flight ran to its end')
  t.type(events.at(-1)!.generated_text, 'string')
  t.equal(await exited, 0)
})

t.test('a second SIGTERM ends the process at once', async (t) => {
  const { child, base, exited } = await startServer(t)
  const streams = await Promise.all(Array.from({ length: 8 }, () => openStream(base, 480)))
  const reads = streams.map((s) => readAll(s.body, () => {}).catch(() => 'cut'))
  child.kill('SIGTERM')
  // Signals that arrive together can merge into one: send the second only
  // once the first has been handled (readiness has dropped).
  while ((await request(`${base}/ready`).then((r) => (r.body.dump(), r.statusCode))) === 200) {
    await new Promise((r) => setTimeout(r, 10))
  }
  child.kill('SIGTERM')
  t.equal(await exited, 1)
  const texts = await Promise.all(reads)
  t.ok(texts.some((x) => parseEvents(x === 'cut' ? '' : x).length < 480), 'streams were cut short')
})
