/**
 * The two error shapes, on a real Fastify with prefixd's error handlers and
 * strict Ajv (no engine): TGI's {error, error_type} (error-handler.ts) and
 * OpenAI's {error: {message, type, param, code}} (openai/errors.ts). Each of
 * prefixd's error classes keeps its table status; schema violations name the
 * field; a 5xx prefixd did not raise is logged and never shows its message.
 */
import t, { type Test } from 'tap'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import {
  ForbiddenError,
  NotReadyError,
  PrefixNotFoundError,
  PromptTooLongError,
  QuotaExceededError,
  RateLimitedError,
  UnauthorizedError,
  ValidationError,
} from '../../src/errors.js'
import { CodedError, errorTable, flatError } from '../../src/domain/error-table.js'
import { errorHandler, notFoundHandler } from '../../src/server/error-handler.js'
import { invalidField } from '../../src/server/generation-request.js'
import { strictAjv } from '../../src/server/strict-ajv.js'
import { OpenAIRequestError, openAIErrorHandler, openAINotFoundHandler } from '../../src/server/openai/errors.js'
import { ChatBody } from '../../src/server/schemas/openai.js'
import { GenerateBody } from '../../src/server/schemas/generate.js'

/** Errors a route throws, by name: prefixd's own, and ones it did not raise on purpose. */
const thrown: Record<string, () => Error> = {
  validation: () => new ValidationError('inputs is bad'),
  stop: () => invalidField('stop', 'stop has 9 sequences; the limit is 8'),
  inputs: () => invalidField('inputs', 'inputs is 9 characters long; the limit is 8'),
  tooLong: () => new PromptTooLongError('prefix (8) + prompt (3 tokens) + max_new_tokens (600) = 611 exceeds the model\'s 512 positions'),
  notFound: () => new PrefixNotFoundError('ghost'),
  quota: () => new QuotaExceededError('over quota'),
  notReady: () => new NotReadyError('the engine stopped'),
  unauthorized: () => new UnauthorizedError('no key'),
  forbidden: () => new ForbiddenError('not yours'),
  rateLimited: () => new RateLimitedError('slow down'),
  engine: () => new CodedError(flatError('PREFIXD_OVERLOADED', 'the queue is full')),
  unsupported: () => new OpenAIRequestError('tools are not supported', 'tools'),
  internal: () => new Error('secret at /etc/passwd'),
  upstream: () => Object.assign(new Error('secret upstream detail'), { statusCode: 502 }),
}

interface LogLine {
  level: number
  msg: string
}

/** A server as app.ts builds it, in miniature: strict Ajv, TGI error shape at the root, OpenAI's under /v1. */
async function errorServer(t: Test): Promise<{ app: FastifyInstance; logs: LogLine[] }> {
  const logs: LogLine[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) logs.push(JSON.parse(line) as LogLine)
      done()
    },
  })
  const app = Fastify({
    logger: { level: 'error', stream },
    bodyLimit: 1024,
    ajv: strictAjv,
  })
  app.setErrorHandler(errorHandler)
  app.setNotFoundHandler(notFoundHandler)
  app.post('/generate', { schema: { body: GenerateBody } }, async () => ({ ok: true }))
  app.get<{ Params: { name: string } }>('/throw/:name', async (request) => {
    throw thrown[request.params.name]()
  })
  await app.register(
    async (v1) => {
      v1.setErrorHandler(openAIErrorHandler)
      v1.setNotFoundHandler(openAINotFoundHandler)
      v1.post('/chat/completions', { schema: { body: ChatBody } }, async () => ({ ok: true }))
      v1.get<{ Params: { name: string } }>('/throw/:name', async (request) => {
        throw thrown[request.params.name]()
      })
    },
    { prefix: '/v1' },
  )
  t.teardown(() => app.close())
  await app.ready()
  return { app, logs }
}

t.test("TGI's shape: {error, error_type} with the table's status", async (t) => {
  const { app, logs } = await errorServer(t)
  const get = async (name: string) => {
    const res = await app.inject({ method: 'GET', url: `/throw/${name}` })
    return { status: res.statusCode, body: res.json() as { error: string; error_type: string } }
  }
  for (const [name, code] of [
    ['validation', 'PREFIXD_VALIDATION'],
    ['stop', 'PREFIXD_VALIDATION'],
    ['tooLong', 'PREFIXD_PROMPT_TOO_LONG'],
    ['notFound', 'PREFIXD_PREFIX_NOT_FOUND'],
    ['quota', 'PREFIXD_QUOTA_EXCEEDED'],
    ['notReady', 'PREFIXD_NOT_READY'],
    ['unauthorized', 'PREFIXD_UNAUTHORIZED'],
    ['forbidden', 'PREFIXD_FORBIDDEN'],
    ['rateLimited', 'PREFIXD_RATE_LIMITED'],
    ['engine', 'PREFIXD_OVERLOADED'],
  ] as const) {
    const answer = await get(name)
    const row = errorTable[code]
    t.same(answer, { status: row.status, body: { error: thrown[name]().message, error_type: row.type } }, name)
  }
  t.same(await get('notFound'), { status: 404, body: { error: "prefix 'ghost' not found", error_type: 'not_found' } })

  // Not raised on purpose: a bare 500, the message kept in the log only.
  for (const name of ['internal', 'upstream']) {
    t.same(await get(name), { status: 500, body: { error: 'internal server error', error_type: 'internal' } }, name)
  }
  t.ok(logs.some((l) => l.msg === 'internal error'), 'masked errors are logged')
  t.ok(logs.some((l) => l.msg === 'the engine stopped'), "our own 5xx are logged with their message")
  t.notOk(logs.some((l) => l.msg === 'over quota'), '4xx are not logged as errors')

  const post = async (payload: string) => {
    const res = await app.inject({ method: 'POST', url: '/generate', headers: { 'content-type': 'application/json' }, payload })
    return { status: res.statusCode, body: res.json() as { error: string; error_type: string } }
  }
  t.match(await post('{"inputs": "x", "parameters": {"max_new_tokens": "7"}}'), {
    status: 422,
    body: { error: /^body\/parameters\/max_new_tokens must be integer/, error_type: 'validation' },
  }, 'no coercion: "7" is not 7, and the field is named')
  t.same(await post('{"inputs": "x", "extra": 1}'), {
    status: 422,
    body: { error: "body has an unknown field 'extra'", error_type: 'validation' },
  }, 'unknown fields are refused, not dropped')
  t.same(await post('{}'), { status: 422, body: { error: "body lacks the required field 'inputs'", error_type: 'validation' } })
  t.match(await post('{"inputs": '), { status: 400, body: { error_type: 'validation' } }, "Fastify's own 4xx keep their status")
  t.match(await post(JSON.stringify({ inputs: 'x'.repeat(2000) })), { status: 413, body: { error_type: 'payload_too_large' } })

  const missing = await app.inject({ method: 'DELETE', url: '/nowhere' })
  t.same([missing.statusCode, missing.json()], [404, { error: 'no route DELETE /nowhere', error_type: 'not_found' }])
})

t.test("OpenAI's shape under /v1: {error: {message, type, param, code}}", async (t) => {
  const { app } = await errorServer(t)
  const get = async (name: string) => {
    const res = await app.inject({ method: 'GET', url: `/v1/throw/${name}` })
    return { status: res.statusCode, error: (res.json() as { error: Record<string, unknown> }).error }
  }
  t.same(await get('validation'), { status: 400, error: { message: 'inputs is bad', type: 'invalid_request_error', param: null, code: 'validation' } }, 'OpenAI answers an invalid request with 400')
  t.same((await get('stop')).error.param, 'stop', 'a refused stop list names its field')
  t.same((await get('inputs')).error.param, null, 'the prompt field differs by route, so it stays unnamed')
  t.match(await get('tooLong'), { status: 400, error: { code: 'validation', message: /exceeds the model's 512 positions/ } })
  t.same(await get('unsupported'), { status: 400, error: { message: 'tools are not supported', type: 'invalid_request_error', param: 'tools', code: 'unsupported_field' } })
  t.same(await get('notFound'), {
    status: 404,
    error: {
      message: "prefix 'ghost' not found: `model` names the base model or a prefix id (GET /v1/models lists them)",
      type: 'not_found_error',
      param: 'model',
      code: 'model_not_found',
    },
  })
  t.match(await get('unauthorized'), { status: 401, error: { type: 'authentication_error', code: 'unauthorized' } })
  t.match(await get('forbidden'), { status: 403, error: { type: 'permission_error', code: 'forbidden' } })
  t.match(await get('rateLimited'), { status: 429, error: { type: 'rate_limit_error', code: 'rate_limited' } })
  t.match(await get('engine'), { status: 429, error: { type: 'rate_limit_error', code: 'overloaded', message: 'the queue is full' } })
  t.match(await get('quota'), { status: 413, error: { type: 'invalid_request_error', code: 'quota_exceeded' } })
  t.same(await get('notReady'), { status: 503, error: { message: 'the engine stopped', type: 'server_error', param: null, code: 'unavailable' } })
  t.same(await get('internal'), { status: 500, error: { message: 'internal server error', type: 'server_error', param: null, code: 'internal' } })

  const post = async (body: unknown) => {
    const res = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: body as object })
    return { status: res.statusCode, error: (res.json() as { error: Record<string, unknown> }).error }
  }
  t.match(await post({ model: 'm', messages: [{ role: 'robot', content: 'hi' }] }), { status: 400, error: { param: 'messages.0.role', code: 'validation' } })
  t.match(await post({ model: 'm', messages: [{ role: 'user', content: 'hi' }], top_k: 3 }), { status: 400, error: { param: 'top_k', message: /unknown field 'top_k'/ } })
  t.match(await post({ model: 'm' }), { status: 400, error: { param: 'messages', message: /lacks the required field 'messages'/ } })

  const missing = await app.inject({ method: 'GET', url: '/v1/nothing' })
  t.same([missing.statusCode, missing.json()], [404, { error: { message: 'no route GET /v1/nothing', type: 'not_found_error', param: null, code: 'not_found' } }])
})
