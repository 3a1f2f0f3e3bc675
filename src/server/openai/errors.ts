/**
 * Errors in OpenAI's shape, {"error": {message, type, param, code}}, for the
 * /v1 routes only (the TGI routes keep {error, error_type}). The status rules
 * are prefixd's (error-handler.ts) with one change: an invalid request is 400,
 * as OpenAI answers it, where the TGI routes say 422.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { AjvIssue } from '../../config/ajv-issue.js'
import { describeValidation, publicError } from '../error-handler.js'
import { fieldOf, type RequestField } from '../generation-request.js'

/** A request OpenAI clients may send that prefixd cannot serve as asked; `param` names the field. */
export class OpenAIRequestError extends Error {
  readonly statusCode = 400
  // A PREFIXD_ code: logs, metrics and the TGI mapping see a validation error.
  readonly code = 'PREFIXD_VALIDATION'
  constructor(
    message: string,
    readonly param: string | null,
    readonly openaiCode = 'unsupported_field',
  ) {
    super(message)
  }
}

/** The body field an Ajv issue is about: "messages.0.role", or the unknown field's name. */
function paramOf(issue: AjvIssue | undefined): string | null {
  if (issue === undefined) return null
  const path = issue.instancePath.split('/').filter(Boolean)
  if (issue.keyword === 'additionalProperties') path.push(String(issue.params?.additionalProperty))
  if (issue.keyword === 'required') path.push(String(issue.params?.missingProperty))
  return path.length > 0 ? path.join('.') : null
}

/**
 * The OpenAI field a refused request field came from. The prompt's field
 * differs by route (prompt, messages), so it stays unnamed as before.
 */
const openAIParam: Partial<Record<RequestField, string>> = { stop: 'stop' }

function errorTypeForStatus(status: number): string {
  if (status === 401) return 'authentication_error'
  if (status === 403) return 'permission_error'
  if (status === 404) return 'not_found_error'
  if (status === 429) return 'rate_limit_error'
  if (status >= 500) return 'server_error'
  return 'invalid_request_error'
}

export interface OpenAIErrorPayload {
  status: number
  body: { error: { message: string; type: string; param: string | null; code: string | null } }
}

/** Any error as an OpenAI error body and its status; internals of unexpected errors never leave. */
export function toOpenAIError(err: FastifyError, request: FastifyRequest): OpenAIErrorPayload {
  const make = (status: number, message: string, param: string | null, code: string | null): OpenAIErrorPayload => ({
    status,
    body: { error: { message, type: errorTypeForStatus(status), param, code } },
  })
  if (err.validation) {
    const issues = err.validation as AjvIssue[]
    return make(400, describeValidation(err.validationContext, issues), paramOf(issues[0]), 'validation')
  }
  const shown = publicError(err, request.log)
  if (shown.internal) return make(500, shown.message, null, shown.errorType)
  if (err instanceof OpenAIRequestError) return make(400, err.message, err.param, err.openaiCode)
  if (err.code === 'PREFIXD_PREFIX_NOT_FOUND') {
    return make(404, `${err.message}: \`model\` names the base model or a prefix id (GET /v1/models lists them)`, 'model', 'model_not_found')
  }
  const field = fieldOf(err)
  return make(shown.status === 422 ? 400 : shown.status, shown.message, field ? (openAIParam[field] ?? null) : null, shown.errorType)
}

export function openAIErrorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = toOpenAIError(err, request)
  void reply.code(status).send(body)
}

export function openAINotFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  void reply.code(404).send({
    error: { message: `no route ${request.method} ${request.url}`, type: 'not_found_error', param: null, code: 'not_found' },
  })
}
