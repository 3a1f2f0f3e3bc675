/**
 * Ids and routes agree: an id of the longest valid length (128) works on
 * every /prefixes/:id route and on /v1/models/:id; a path parameter longer
 * than any id is refused in the documented error shapes, not Fastify's.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startApp } from '../helpers/app.js'
import { buildPeftAdapter } from '../helpers/prefix-fixtures.js'
import { upload } from '../helpers/prefix-upload.js'
import { generatedModel } from '../helpers/tiny-model.js'

const store = mkdtempSync(join(tmpdir(), 'prefixd-ids-'))
t.teardown(() => rmSync(store, { recursive: true, force: true }))
const app = await startApp(t, await generatedModel('llama'), { PREFIX_DIR: store })
const spec = app.engine.spec
const adapter = buildPeftAdapter({ layers: spec.numLayers, kvHeads: spec.numKvHeads, headDim: spec.headDim, P: 2 })
const files = { 'adapter_config.json': adapter.configJson, 'adapter_model.safetensors': adapter.safetensors }

t.test('ids of 101 to 128 characters work on every route', async (t) => {
  for (const length of [101, 128]) {
    const id = `${'a'.repeat(length - 4)}.b-_`
    t.equal((await upload(app, 'POST', '/prefixes', files, { id })).status, 201, `${length}: created`)
    t.equal((await app.inject({ method: 'GET', url: `/prefixes/${id}` })).json().id, id, `${length}: read`)
    t.equal((await app.inject({ method: 'GET', url: `/prefixes/${id}/download` })).statusCode, 200, `${length}: downloaded`)
    t.equal((await upload(app, 'PUT', `/prefixes/${id}`, files)).status, 200, `${length}: replaced`)
    t.equal((await app.inject({ method: 'GET', url: `/v1/models/${id}` })).json().id, id, `${length}: an OpenAI model`)
    const gen = await app.inject({ method: 'POST', url: '/generate', payload: { inputs: 'a', parameters: { prefix_id: id, max_new_tokens: 1 } } })
    t.equal(gen.statusCode, 200, `${length}: generates`)
    t.equal((await app.inject({ method: 'DELETE', url: `/prefixes/${id}` })).statusCode, 204, `${length}: deleted`)
    // Percent-encoding every character still routes.
    const encoded = [...id].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join('')
    t.equal((await app.inject({ method: 'GET', url: `/prefixes/${encoded}` })).statusCode, 404, `${length}: percent-encoded, routed (and gone)`)
  }
})

t.test('a path parameter longer than any id: 414 in the documented shapes', async (t) => {
  const long = 'x'.repeat(400)
  for (const url of [`/prefixes/${long}`, `/prefixes/${long}/download`]) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 414, url.slice(0, 30))
    t.same(Object.keys(res.json()).sort(), ['error', 'error_type'])
    t.equal(res.json().error_type, 'validation')
    t.match(res.json().error, /longer than 384 characters; ids have at most 128/)
  }
  const openai = await app.inject({ method: 'GET', url: `/v1/models/${long}` })
  t.equal(openai.statusCode, 414)
  t.same(Object.keys(openai.json().error).sort(), ['code', 'message', 'param', 'type'], 'OpenAI error object under /v1')
  const bad = await app.inject({ method: 'GET', url: '/prefixes/%E0%A4%A' })
  t.equal(bad.statusCode, 422, bad.body)
  t.same(Object.keys(bad.json()).sort(), ['error', 'error_type'], 'a malformed escape: the documented shape too')
})
