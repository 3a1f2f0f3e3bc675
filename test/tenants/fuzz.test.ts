/**
 * Hardening: random and malformed bodies, headers and ids, sent to every
 * route through app.inject, never produce a 5xx or take the process down.
 * Numbers are pushed to their edges (2^31, 2^53, 1e308, -0, the smallest
 * denormal, huge arrays): every numeric field must have a schema bound.
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
  DEFAULT_MAX_NEW_TOKENS: 2,
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

/** The numbers that break unbounded code: overflow, precision loss, signed zero, denormals. */
const edgeNumber = fc.constantFrom(
  0, -0, 1, -1, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 2 ** 63, 1e21, 1e308, -1e308,
  Number.MAX_VALUE, Number.MIN_VALUE, -Number.MIN_VALUE, 1e-300, 0.5, 1.5, 2,
)
/** A number near the edges, or an ordinary one. */
const num = (ordinary: fc.Arbitrary<number>) => fc.oneof(edgeNumber, ordinary)
/** Numbers JSON can carry but JSON.stringify cannot write: sent as raw text. */
const RAW_NUMBERS = ['1e400', '-1e400', '1e-400', '123456789012345678901234567890', '-0.0', '0e0', '1E+2']

// Bodies that look almost right are the ones that reach the deepest code.
const nearlyRight = fc.record(
  {
    inputs: fc.oneof(fc.string(), fc.constant(null), fc.integer()),
    prompt: fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 3 })),
    model: fc.oneof(fc.constant('known'), fc.string()),
    messages: fc.array(fc.record({ role: fc.constantFrom('user', 'system', 'x'), content: fc.string() }), { maxLength: 3 }),
    max_tokens: fc.oneof(num(fc.integer({ min: -5, max: 3 })), fc.string()),
    max_completion_tokens: num(fc.integer({ min: -1, max: 3 })),
    n: num(fc.integer({ min: -1, max: 3 })),
    temperature: num(fc.double()),
    top_p: num(fc.double()),
    seed: num(fc.integer()),
    logprobs: fc.oneof(fc.boolean(), num(fc.integer({ min: -1, max: 6 }))),
    top_logprobs: num(fc.integer({ min: -1, max: 21 })),
    best_of: num(fc.integer({ min: 0, max: 3 })),
    frequency_penalty: num(fc.double()),
    presence_penalty: num(fc.double()),
    logit_bias: fc.dictionary(fc.string({ maxLength: 6 }), num(fc.double()), { maxKeys: 3 }),
    stream: fc.boolean(),
    parameters: fc.record(
      {
        prefix_id: fc.oneof(fc.constant('known'), fc.string(), fc.array(fc.string(), { maxLength: 10 })),
        max_new_tokens: fc.oneof(num(fc.integer({ min: -5, max: 3 })), fc.double(), fc.string()),
        temperature: fc.oneof(num(fc.double()), fc.constant(0), fc.constant(-1)),
        top_p: num(fc.double()),
        top_k: num(fc.integer({ min: -3, max: 600 })),
        seed: fc.oneof(num(fc.integer()), fc.double(), fc.constant(2 ** 60)),
        stop: fc.oneof(fc.array(fc.string(), { maxLength: 10 }), fc.constant(Array.from({ length: 100_000 }, () => 'x'))),
        repetition_penalty: num(fc.double()),
        do_sample: fc.boolean(),
        details: fc.boolean(),
      },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: [] },
)
const generateParameters = fc.record(
  {
    prefix_id: fc.constant('known'),
    max_new_tokens: num(fc.integer({ min: 1, max: 2 })),
    temperature: num(fc.double({ min: 0.1, max: 2, noNaN: true })),
    top_p: num(fc.double({ min: 0.1, max: 1, noNaN: true })),
    top_k: num(fc.integer({ min: 1, max: 50 })),
    seed: num(fc.integer({ min: 0, max: 1000 })),
    repetition_penalty: num(fc.double({ min: 0.5, max: 2, noNaN: true })),
    do_sample: fc.boolean(),
  },
  { requiredKeys: [] },
)
const openAINumbers = {
  max_tokens: num(fc.integer({ min: 1, max: 2 })),
  temperature: num(fc.double({ min: 0, max: 2, noNaN: true })),
  top_p: num(fc.double({ min: 0.1, max: 1, noNaN: true })),
  n: num(fc.integer({ min: 1, max: 2 })),
  seed: num(fc.integer({ min: 0, max: 1000 })),
  stream: fc.boolean(),
}
/** Valid for exactly one route but for one or two edge numbers: they pass every check but the numeric bounds. */
const validButEdgy = fc.oneof(
  fc.record({ inputs: fc.string({ maxLength: 20 }), parameters: generateParameters }, { requiredKeys: ['inputs'] }),
  fc.record({ model: fc.constant('known'), prompt: fc.string({ maxLength: 20 }), logprobs: num(fc.integer({ min: 0, max: 5 })), ...openAINumbers }, { requiredKeys: ['model', 'prompt'] }),
  fc.record(
    { model: fc.constant('known'), messages: fc.constant([{ role: 'user', content: 'hi' }]), top_logprobs: num(fc.integer({ min: 0, max: 20 })), max_completion_tokens: num(fc.integer({ min: 1, max: 2 })), ...openAINumbers },
    { requiredKeys: ['model', 'messages'] },
  ),
)

/** A nearly-right body with one numeric field written as raw JSON text (1e400, 30 digits...). */
const rawNumberBody = fc
  .tuple(validButEdgy, fc.constantFrom('max_tokens', 'temperature', 'top_p', 'n', 'seed', 'top_k', 'max_new_tokens', 'repetition_penalty'), fc.constantFrom(...RAW_NUMBERS))
  .map(([b, field, raw]) => {
    // /generate bodies carry their numbers in parameters, OpenAI bodies at the top.
    const inParameters = 'inputs' in b
    const target = inParameters ? { ...(b.parameters as object), [field]: '@RAW@' } : undefined
    const text = JSON.stringify(inParameters ? { ...b, parameters: target } : { ...b, [field]: '@RAW@' })
    return text.replace('"@RAW@"', raw)
  })
type Route = (typeof ROUTES)[number]
/** The route a body was made for: where its edge numbers reach the deepest code. */
function routeOf(raw: string): Route {
  if (raw.startsWith('{"inputs"')) return raw.length % 2 === 0 ? ['POST', '/generate'] : ['POST', '/generate_stream']
  return raw.includes('"messages"') ? ['POST', '/v1/chat/completions'] : ['POST', '/v1/completions']
}
const matched = fc
  .oneof(validButEdgy.map((b) => JSON.stringify(b)), rawNumberBody)
  .map((raw): [Route, { raw: string; type: string }] => [routeOf(raw), { raw, type: 'application/json' }])

const body = fc.oneof(
  fc.json().map((j) => ({ raw: j, type: 'application/json' })),
  nearlyRight.map((b) => ({ raw: JSON.stringify(b), type: 'application/json' })),
  nearlyRight.map((b) => ({ raw: JSON.stringify(b), type: 'application/json' })),
  rawNumberBody.map((raw) => ({ raw, type: 'application/json' })),
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

/** At least 20,000 requests: rare paths (a valid body with one edge number) need volume to be reached. */
const RUNS = 20_000

t.test('no input makes any route answer 5xx', async (t) => {
  let requests = 0
  const served = new Set<string>()
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.tuple(fc.constantFrom(...ROUTES), body), matched), id, auth, query, async ([[method, path], b], pid, authorization, q) => {
      const url = path.replace('{id}', encodeURIComponent(pid)) + (method === 'GET' ? q : '')
      const headers: Record<string, string> = { 'content-type': b.type }
      if (authorization !== undefined) headers.authorization = authorization
      const res = await app.inject({ method, url, headers, payload: method === 'GET' || method === 'DELETE' ? undefined : b.raw })
      requests++
      if (res.statusCode === 200) served.add(path)
      if (res.statusCode >= 500) throw new Error(`${method} ${url} → ${res.statusCode}: ${res.body.slice(0, 300)}`)
    }),
    { numRuns: RUNS, seed: 20261130 },
  )
  t.equal(requests, RUNS)
  // The edge numbers were tried on bodies that get all the way through: each generation route generated.
  for (const path of ['/generate', '/generate_stream', '/v1/completions']) t.ok(served.has(path), `${path} answered 200 at least once`)
  t.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 200, 'still ready afterwards')
})
