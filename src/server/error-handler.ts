/**
 * One mapping from any error to an HTTP answer {error, error_type}. Schema
 * violations become 422 naming the field; prefixd's own errors keep their
 * status; anything else is a 500 whose body never carries internals.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { FastifyBaseLogger } from 'fastify'
import type { AjvIssue } from '../config/ajv-issue.js'
import { errorTypeOf } from '../domain/error-table.js'

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
  const shown = publicError(err, request.log)
  void reply.code(shown.status).send({ error: shown.message, error_type: shown.errorType })
}

/** What of an error may leave the process, whatever shape the answer takes. */
export interface PublicError {
  status: number
  message: string
  errorType: string
  /** Not raised on purpose: the message was replaced. */
  internal: boolean
}

/**
 * The one rule for 5xx masking (TGI routes, their streams and the OpenAI
 * routes all apply it): a 5xx we did not raise on purpose is logged and
 * answered as a bare internal error, since its message may carry internals;
 * our own 5xx are logged and keep their message.
 */
export function publicError(err: { code?: string; statusCode?: number; message?: string }, log: FastifyBaseLogger): PublicError {
  const status = err.statusCode ?? 500
  const ours = err.code?.startsWith('PREFIXD_') ?? false
  if (status >= 500 && !ours) {
    log.error({ err }, 'internal error')
    return { status: 500, message: 'internal server error', errorType: 'internal', internal: true }
  }
  if (status >= 500) log.error({ err }, err.message)
  // Fastify's own 4xx (bad JSON, wrong content type, body too large) keep their status.
  const errorType = ours ? errorTypeOf(err.code) : status === 413 ? 'payload_too_large' : 'validation'
  return { status, message: err.message ?? '', errorType, internal: false }
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  void reply.code(404).send({ error: `no route ${request.method} ${request.url}`, error_type: 'not_found' })
}
