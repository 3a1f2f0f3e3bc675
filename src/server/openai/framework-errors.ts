/**
 * Errors Fastify's router raises before any route runs (a path parameter over
 * the router's length limit, a URL that does not decode) answered in the
 * documented shapes: {error, error_type} on prefixd's routes, OpenAI's error
 * object under /v1, instead of Fastify's own {error, code, message, statusCode}.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { PREFIX_ID_MAX_CHARS } from '../../domain/prefix-id.js'
import { UriTooLongError, ValidationError } from '../../errors.js'
import { errorHandler } from '../error-handler.js'
import { openAIErrorHandler } from './errors.js'

/**
 * The router's limit on one path parameter: every valid id fits, even with
 * each of its characters percent-encoded (3 characters each).
 */
export const MAX_PARAM_LENGTH = PREFIX_ID_MAX_CHARS * 3

export function frameworkErrors(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const mapped =
    err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new UriTooLongError(`a path parameter is longer than ${MAX_PARAM_LENGTH} characters; ids have at most ${PREFIX_ID_MAX_CHARS}`)
      : err.code === 'FST_ERR_BAD_URL'
        ? new ValidationError('the URL does not decode: a path parameter holds a malformed percent-escape')
        : err
  const handle = request.url.startsWith('/v1/') ? openAIErrorHandler : errorHandler
  handle(mapped as FastifyError, request, reply)
}
