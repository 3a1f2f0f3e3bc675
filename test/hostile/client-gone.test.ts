/**
 * A client that hangs up while its request is being prepared (its prefix
 * resolving) costs nothing more: the request never reaches the engine.
 * Before, its 'close' event was gone by the time anyone listened, and the
 * generation ran to completion for nobody.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { startApp } from '../helpers/app.js'
import { buildPeftAdapter } from '../helpers/prefix-fixtures.js'
import { upload } from '../helpers/prefix-upload.js'
import { generatedModel } from '../helpers/tiny-model.js'

const store = mkdtempSync(join(tmpdir(), 'prefixd-gone-'))
t.teardown(() => rmSync(store, { recursive: true, force: true }))
const app = await startApp(t, await generatedModel('llama'), { PREFIX_DIR: store })
const base = await app.listen({ host: '127.0.0.1', port: 0 })
const spec = app.engine.spec
const adapter = buildPeftAdapter({ layers: spec.numLayers, kvHeads: spec.numKvHeads, headDim: spec.headDim, P: 2 })
t.equal((await upload(app, 'POST', '/prefixes', { 'adapter_config.json': adapter.configJson, 'adapter_model.safetensors': adapter.safetensors }, { id: 'p' })).status, 201)

// Spies on the real objects: every call still goes through.
let submits = 0
const submit = app.engine.submit.bind(app.engine)
app.engine.submit = (...args) => (submits++, submit(...args))
const runs: Array<Promise<unknown>> = []
const prepares: Array<Promise<unknown>> = []
const prepare = app.generation.prepare.bind(app.generation)
app.generation.prepare = (...args) => {
  const p = prepare(...args)
  prepares.push(p.catch((err: unknown) => err))
  return p
}
const run = app.generation.run.bind(app.generation)
app.generation.run = (...args) => {
  const p = run(...args)
  runs.push(p.catch((err: unknown) => err))
  return p
}
// A gate in prefix resolution: the request is held there while its client leaves.
let entered = () => {}
let release = () => {}
const resolve = app.prefixStore.resolve.bind(app.prefixStore)
app.prefixStore.resolve = async (...args) => {
  entered()
  await new Promise<void>((r) => (release = r))
  return resolve(...args)
}

const connections = () => new Promise<number>((r) => app.server.getConnections((_, n) => r(n)))

for (const path of ['/generate', '/generate_stream']) {
  t.test(`${path}: a client gone during prefix resolution is never submitted`, async (t) => {
    submits = 0
    runs.length = 0
    prepares.length = 0
    const inResolve = new Promise<void>((r) => (entered = r))
    const client = new AbortController()
    const sent = request(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: 'Once upon a time', parameters: { prefix_id: 'p', max_new_tokens: 200 } }),
      signal: client.signal,
    }).catch((err: unknown) => err)
    await inResolve
    client.abort()
    await sent
    // The server has seen the connection close before resolution goes on.
    while ((await connections()) > 0) await new Promise((r) => setTimeout(r, 5))
    release()
    const prepared = (await prepares[0]) as { code?: string; promptIds?: number[] }
    // Either preparing stopped, or the run that followed ended as cancelled, never generated.
    const outcome = prepared.promptIds === undefined ? prepared : ((await runs[0]) as { code?: string; tokens?: unknown[] })
    t.equal(outcome?.code, 'PREFIXD_CANCELLED', 'the request ends as cancelled')
    t.equal(submits, 0, 'nothing was submitted to the engine')
  })
}
