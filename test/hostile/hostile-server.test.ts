/**
 * Hostile clients against a real server on a real socket: requests half sent
 * are closed with 408 instead of being held; one client address cannot take
 * more than its share of connections, and the probes answer meanwhile; a
 * prefix that makes the model's output non-finite fails its own request while
 * another tenant's stream finishes with exactly its tokens.
 */
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { startApp } from '../helpers/app.js'
import { buildPeftAdapter } from '../helpers/prefix-fixtures.js'
import { upload } from '../helpers/prefix-upload.js'
import { readEvents } from '../helpers/sse.js'
import { generatedModel } from '../helpers/tiny-model.js'

const modelDir = await generatedModel('llama')

async function serve(config: Parameters<typeof startApp>[2]) {
  const store = mkdtempSync(join(tmpdir(), 'prefixd-hostile-'))
  t.teardown(() => rmSync(store, { recursive: true, force: true }))
  const app = await startApp(t, modelDir, { PREFIX_DIR: store, ...config })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  return { app, port, base: `http://127.0.0.1:${port}` }
}

/** A raw connection that sends `text` and then stalls; resolves with everything the server sent once it closes. */
function stall(port: number, text: string, localAddress = '127.0.0.1'): { socket: Socket; closed: Promise<string> } {
  const socket = connect({ port, host: '127.0.0.1', localAddress })
  let got = ''
  socket.on('data', (d) => (got += d.toString('latin1')))
  socket.on('error', () => {})
  socket.write(text)
  return { socket, closed: new Promise((resolve) => socket.on('close', () => resolve(got))) }
}

const connected = (s: Socket) => new Promise<void>((resolve) => (s.connecting ? s.once('connect', () => resolve()) : resolve()))

t.test('half-sent requests are closed with 408, not held', async (t) => {
  const { port } = await serve({ HEADERS_TIMEOUT_MS: 300, REQUEST_READ_TIMEOUT_MS: 600 })
  const headers = stall(port, 'GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ')
  const body = stall(port, 'POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"inputs": "')
  t.match(await headers.closed, /^HTTP\/1\.1 408 /, 'headers never finished: 408, closed')
  t.match(await body.closed, /^HTTP\/1\.1 408 /, 'body never finished: 408, closed')
})

t.test('one client holds at most its share of connections; the probes still answer', async (t) => {
  const { base, port } = await serve({ MAX_CONNECTIONS_PER_CLIENT: 8, HEADERS_TIMEOUT_MS: 600_000, REQUEST_READ_TIMEOUT_MS: 600_000 })
  // The attacker, from its own address, holds as many half-sent requests as it may...
  const held = Array.from({ length: 8 }, () => stall(port, 'GET /health HTTP/1.1\r\nHost: x\r\n', '127.0.0.2'))
  await Promise.all(held.map((h) => connected(h.socket)))
  // ...and its next connection is closed at once, unanswered.
  const over = stall(port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n', '127.0.0.2')
  t.equal(await over.closed, '', 'the ninth connection is closed without an answer')
  for (const path of ['/health', '/ready']) {
    const res = await request(`${base}${path}`)
    t.equal(res.statusCode, 200, `${path} answers while the attacker holds its maximum`)
    await res.body.dump()
  }
  const gen = await request(`${base}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: 'a', parameters: { max_new_tokens: 2 } }) })
  t.equal(gen.statusCode, 200, 'and so does /generate')
  await gen.body.dump()
  for (const h of held) h.socket.destroy()
})

t.test('a poisoned prefix fails its own requests; a stream beside it keeps its exact tokens', async (t) => {
  const { app, base } = await serve({})
  const spec = app.engine.spec
  const adapter = buildPeftAdapter({ layers: spec.numLayers, kvHeads: spec.numKvHeads, headDim: spec.headDim, P: 3 })
  // Different contents: the engine keys prefixes by content, and only 'victim' is poisoned below.
  for (const [id, seed] of [['healthy', 1], ['victim', 2]] as const) {
    const adapter = buildPeftAdapter({ layers: spec.numLayers, kvHeads: spec.numKvHeads, headDim: spec.headDim, P: 3, seed })
    const r = await upload(app, 'POST', '/prefixes', { 'adapter_config.json': adapter.configJson, 'adapter_model.safetensors': adapter.safetensors }, { id })
    t.equal(r.status, 201, `${id} uploaded`)
  }
  // Upload refuses values that overflow the model...
  const huge = buildPeftAdapter({ layers: spec.numLayers, kvHeads: spec.numKvHeads, headDim: spec.headDim, P: 3, embeddings: adapter.embeddings.map(() => 3e38) })
  const refused = await upload(app, 'POST', '/prefixes', { 'adapter_config.json': huge.configJson, 'adapter_model.safetensors': huge.safetensors }, { id: 'huge' })
  t.equal(refused.status, 422)
  t.equal(refused.body.error_type, 'invalid_prefix')
  t.match(refused.body.error, /cannot be served/)
  t.equal((await app.inject({ method: 'GET', url: '/prefixes/huge' })).statusCode, 404, 'nothing stored')
  // ...so a prefix that still overflows (one the bound lets through on some
  // model) is stood in for by poisoning the engine's copy of 'victim'.
  const { key } = await app.prefixStore.resolve('victim', { tenant: 'anonymous', role: 'admin' })
  const perLayer = spec.numKvHeads * 3 * spec.headDim
  const poison = () => Array.from({ length: spec.numLayers }, () => new Float32Array(perLayer).fill(3e38))
  app.engine.putAdapter(key, { kind: 'past_kv', prefix: { numVirtualTokens: 3, numLayers: spec.numLayers, numKvHeads: spec.numKvHeads, headDim: spec.headDim, keys: poison(), values: poison() } })

  const streamBody = JSON.stringify({ inputs: 'Once upon', parameters: { prefix_id: 'healthy', max_new_tokens: 200 } })
  const streamTokens = async () => {
    const res = await request(`${base}/generate_stream`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: streamBody })
    t.equal(res.statusCode, 200, 'the healthy stream opens')
    return ((await readEvents(res.body)) as Array<{ token: { id: number } }>).map((e) => e.token.id)
  }
  const alone = await streamTokens()
  const beside = streamTokens()
  const poisoned = await Promise.all(
    Array.from({ length: 3 }, () =>
      request(`${base}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: 'x', parameters: { prefix_id: 'victim', max_new_tokens: 5 } }) }),
    ),
  )
  for (const res of poisoned) {
    t.equal(res.statusCode, 422)
    t.same(await res.body.json(), { error: "the prefix makes the model's output non-finite", error_type: 'invalid_prefix' })
  }
  t.same(await beside, alone, 'the healthy stream got exactly its tokens')
  t.equal(alone.length, 200)
  t.equal((await request(`${base}/ready`)).statusCode, 200, 'the server is still ready')
})
