/**
 * Hardening: random and malformed bodies, headers and ids, sent to every
 * route through app.inject, never produce a 5xx or take the process down.
 */
import t from 'tap'
import fc from 'fast-check'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hashKey, newKey } from '../../src/auth/api-keys.js'
import { startApp } from '../helpers/app.js'
import { buildPeftAdapter } from '../helpers/prefix-fixtures.js'
import { uploadForm } from '../helpers/prefix-upload.js'
import { generatedModel } from '../helpers/tiny-model.js'

const key = newKey()
const store = mkdtempSync(join(tmpdir(), 'prefixd-fuzz-'))
t.teardown(() => rmSync(store, { recursive: true, force: true }))
const app = await startApp(t, await generatedModel('llama'), {
  PREFIX_DIR: store,
  API_KEYS: `fuzzer:admin:${hashKey(key)}`,
  DEFAULT_MAX_NEW_TOKENS: 4,
})
const a = buildPeftAdapter({ layers: 2, kvHeads: 2, headDim: 16, P: 2 })
await app.inject({
  method: 'POST',
  url: '/prefixes',
  headers: { authorization: `Bearer ${key}` },
  payload: uploadForm({ 'adapter_config.json': a.configJson, 'adapter_model.safetensors': a.safetensors }, { id: 'known' }),
})

const ROUTES: Array<['GET' | 'POST' | 'PUT' | 'DELETE', string]> = [
  ['POST', '/generate'],
  ['POST', '/generate_stream'],
  ['POST', '/'],
  ['POST', '/prefixes'],
  ['PUT', '/prefixes/{id}'],
  ['GET', '/prefixes'],
  ['GET', '/prefixes/{id}'],
  ['GET', '/prefixes/{id}/download'],
  ['DELETE', '/prefixes/{id}'],
  ['POST', '/v1/completions'],
  ['POST', '/v1/chat/completions'],
  ['GET', '/v1/models'],
  ['GET', '/v1/models/{id}'],
  ['GET', '/health'],
  ['GET', '/ready'],
  ['GET', '/info'],
  ['GET', '/metrics'],
]

// Bodies that look almost right are the ones that reach the deepest code.
const nearlyRight = fc.record(
  {
    inputs: fc.oneof(fc.string(), fc.constant(null), fc.integer()),
    prompt: fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 3 })),
    model: fc.oneof(fc.constant('known'), fc.string()),
    messages: fc.array(fc.record({ role: fc.constantFrom('user', 'system', 'x'), content: fc.string() }), { maxLength: 3 }),
    max_tokens: fc.oneof(fc.integer({ min: -5, max: 6 }), fc.constant(1e300), fc.string()),
    parameters: fc.record(
      {
        prefix_id: fc.oneof(fc.constant('known'), fc.string(), fc.array(fc.string(), { maxLength: 10 })),
        max_new_tokens: fc.oneof(fc.integer({ min: -5, max: 6 }), fc.double(), fc.string()),
        temperature: fc.oneof(fc.double(), fc.constant(0), fc.constant(-1)),
        top_p: fc.double(),
        top_k: fc.integer({ min: -3, max: 600 }),
        seed: fc.oneof(fc.integer(), fc.double(), fc.constant(2 ** 60)),
        stop: fc.array(fc.string(), { maxLength: 10 }),
        repetition_penalty: fc.double(),
      },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: [] },
)
const body = fc.oneof(
  fc.json().map((j) => ({ raw: j, type: 'application/json' })),
  nearlyRight.map((b) => ({ raw: JSON.stringify(b), type: 'application/json' })),
  fc
    .tuple(fc.string(), fc.constantFrom('application/json', 'text/plain', 'multipart/form-data; boundary=x', ''))
    .map(([raw, type]) => ({ raw, type })),
  fc.uint8Array({ maxLength: 256 }).map((u) => ({ raw: Buffer.from(u).toString('latin1'), type: 'multipart/form-data; boundary=----x' })),
)
const id = fc.oneof(fc.constant('known'), fc.string({ maxLength: 200 }), fc.constantFrom('..', '.', '%2e%2e', 'a/b', '%00', 'x'.repeat(300)))
const auth = fc.oneof(
  fc.constant(`Bearer ${key}`),
  fc.constant(`Bearer ${key}`),
  fc.string(),
  fc.constant('Bearer '),
  fc.constant(undefined),
)
const query = fc.oneof(fc.constant(''), fc.string({ maxLength: 40 }).map((s) => `?${encodeURIComponent(s)}`), fc.constantFrom('?limit=0', '?limit=abc', '?limit=5&cursor=zz', '?limit=99999', '?x=1'))

t.test('no input makes any route answer 5xx', async (t) => {
  let requests = 0
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...ROUTES), body, id, auth, query, async ([method, path], b, pid, authorization, q) => {
      const url = path.replace('{id}', encodeURIComponent(pid)) + (method === 'GET' ? q : '')
      const headers: Record<string, string> = { 'content-type': b.type }
      if (authorization !== undefined) headers.authorization = authorization
      const res = await app.inject({ method, url, headers, payload: method === 'GET' || method === 'DELETE' ? undefined : b.raw })
      requests++
      if (res.statusCode >= 500) throw new Error(`${method} ${url} → ${res.statusCode}: ${res.body.slice(0, 300)}`)
    }),
    { numRuns: 400, seed: 20261130 },
  )
  t.equal(requests, 400)
  t.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 200, 'still ready afterwards')
})
