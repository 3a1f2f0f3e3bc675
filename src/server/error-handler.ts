/**
 * One mapping from any error to an HTTP answer {error, error_type}. Schema
 * violations become 422 naming the field; prefixd's own errors keep their
 * status; anything else is a 500 whose body never carries internals.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { errorTypeOf } from '../errors.js'

interface AjvIssue {
  instancePath: string
  keyword: string
  message?: string
  params?: Record<string, unknown>
}

/** "body/parameters/max_new_tokens must be >= 1"; unknown fields by name. */
export function describeValidation(context: string | undefined, issues: AjvIssue[]): string {
  return issues
    .map((i) => {
      const where = `${context ?? 'body'}${i.instancePath}`
      if (i.keyword === 'additionalProperties') return `${where} has an unknown field '${String(i.params?.additionalProperty)}'`
      if (i.keyword === 'required') return `${where} lacks the required field '${String(i.params?.missingProperty)}'`
      return `${where} ${i.message ?? 'is invalid'}`
    })
    .join('; ')
}

export function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  if (err.validation) {
    void reply.code(422).send({
      error: describeValidation(err.validationContext, err.validation as AjvIssue[]),
      error_type: 'validation',
    })
    return
  }
  const status = err.statusCode ?? 500
  if (status >= 500 && !err.code?.startsWith('PREFIXD_')) {
    request.log.error({ err }, 'internal error')
    void reply.code(500).send({ error: 'internal server error', error_type: 'internal' })
    return
  }
  if (status >= 500) request.log.error({ err }, err.message)
  // Fastify's own 4xx (bad JSON, wrong content type, body too large) keep their status.
  const type = err.code?.startsWith('PREFIXD_') ? errorTypeOf(err.code) : status === 413 ? 'payload_too_large' : 'validation'
  void reply.code(status).send({ error: err.message, error_type: type })
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  void reply.code(404).send({ error: `no route ${request.method} ${request.url}`, error_type: 'not_found' })
}
