/**
 * Every error prefixd raises on purpose, in one place: its code, HTTP status and
 * the stable `error_type` clients switch on (TGI's vocabulary where it has one:
 * validation → 422, overloaded → 429). Anything not listed here is an internal
 * error and surfaces as a 500 whose body never carries the original message.
 */
import createError from '@fastify/error'

type Msg = [string?, string?, string?]

export const ValidationError = createError<'PREFIXD_VALIDATION', 422, Msg>('PREFIXD_VALIDATION', '%s', 422)
export const PromptTooLongError = createError<'PREFIXD_PROMPT_TOO_LONG', 422, Msg>('PREFIXD_PROMPT_TOO_LONG', '%s', 422)
export const PrefixNotFoundError = createError<'PREFIXD_PREFIX_NOT_FOUND', 404, Msg>('PREFIXD_PREFIX_NOT_FOUND', "prefix '%s' not found", 404)
/** A prefix file that is malformed: bad safetensors, missing tensors, bad dtype, NaN, pickle... */
export const InvalidPrefixError = createError<'PREFIXD_INVALID_PREFIX', 422, Msg>('PREFIXD_INVALID_PREFIX', '%s', 422)
/** A well-formed prefix that was trained for a different model shape. */
export const PrefixShapeMismatchError = createError<'PREFIXD_PREFIX_SHAPE_MISMATCH', 422, Msg>('PREFIXD_PREFIX_SHAPE_MISMATCH', '%s', 422)
export const PayloadTooLargeError = createError<'PREFIXD_PAYLOAD_TOO_LARGE', 413, Msg>('PREFIXD_PAYLOAD_TOO_LARGE', '%s', 413)
export const OverloadedError = createError<'PREFIXD_OVERLOADED', 429, Msg>('PREFIXD_OVERLOADED', '%s', 429)
export const DeadlineExceededError = createError<'PREFIXD_DEADLINE_EXCEEDED', 504, Msg>('PREFIXD_DEADLINE_EXCEEDED', '%s', 504)
export const NotReadyError = createError<'PREFIXD_NOT_READY', 503, Msg>('PREFIXD_NOT_READY', '%s', 503)
export const CancelledError = createError<'PREFIXD_CANCELLED', 499, Msg>('PREFIXD_CANCELLED', '%s', 499)
export const UnauthorizedError = createError<'PREFIXD_UNAUTHORIZED', 401, Msg>('PREFIXD_UNAUTHORIZED', '%s', 401)
export const ForbiddenError = createError<'PREFIXD_FORBIDDEN', 403, Msg>('PREFIXD_FORBIDDEN', '%s', 403)
export const QuotaExceededError = createError<'PREFIXD_QUOTA_EXCEEDED', 413, Msg>('PREFIXD_QUOTA_EXCEEDED', '%s', 413)
export const RateLimitedError = createError<'PREFIXD_RATE_LIMITED', 429, Msg>('PREFIXD_RATE_LIMITED', '%s', 429)
export const ModelLoadError = createError<'PREFIXD_MODEL_LOAD', 500, Msg>('PREFIXD_MODEL_LOAD', '%s', 500)
export const ConfigError = createError<'PREFIXD_CONFIG', 500, Msg>('PREFIXD_CONFIG', '%s', 500)
/** POST /prefixes with an id that is taken: replacing is PUT's job. */
export const PrefixExistsError = createError<'PREFIXD_PREFIX_EXISTS', 409, Msg>('PREFIXD_PREFIX_EXISTS', '%s', 409)
/** The prefix store (Redis) cannot be reached: uploads and cache misses fail fast instead of hanging. */
export const StoreUnavailableError = createError<'PREFIXD_STORE_UNAVAILABLE', 503, Msg>('PREFIXD_STORE_UNAVAILABLE', '%s', 503)
/** A path segment (a prefix or model id) longer than any valid id, however encoded. */
export const UriTooLongError = createError<'PREFIXD_URI_TOO_LONG', 414, Msg>('PREFIXD_URI_TOO_LONG', '%s', 414)
export const UnsupportedMediaTypeError = createError<'PREFIXD_UNSUPPORTED_MEDIA_TYPE', 415, Msg>('PREFIXD_UNSUPPORTED_MEDIA_TYPE', '%s', 415)

/** code → stable error_type in responses. Unknown codes are internal errors. */
export const errorTypes: Readonly<Record<string, string>> = {
  PREFIXD_VALIDATION: 'validation',
  PREFIXD_PROMPT_TOO_LONG: 'validation',
  PREFIXD_PREFIX_NOT_FOUND: 'not_found',
  PREFIXD_INVALID_PREFIX: 'invalid_prefix',
  PREFIXD_PREFIX_SHAPE_MISMATCH: 'prefix_mismatch',
  PREFIXD_PAYLOAD_TOO_LARGE: 'payload_too_large',
  PREFIXD_OVERLOADED: 'overloaded',
  PREFIXD_DEADLINE_EXCEEDED: 'deadline_exceeded',
  PREFIXD_NOT_READY: 'unavailable',
  PREFIXD_CANCELLED: 'cancelled',
  PREFIXD_UNAUTHORIZED: 'unauthorized',
  PREFIXD_FORBIDDEN: 'forbidden',
  PREFIXD_QUOTA_EXCEEDED: 'quota_exceeded',
  PREFIXD_RATE_LIMITED: 'rate_limited',
  PREFIXD_MODEL_LOAD: 'internal',
  PREFIXD_CONFIG: 'internal',
  PREFIXD_PREFIX_EXISTS: 'conflict',
  PREFIXD_STORE_UNAVAILABLE: 'store_unavailable',
  PREFIXD_UNSUPPORTED_MEDIA_TYPE: 'validation',
  PREFIXD_URI_TOO_LONG: 'validation',
}

/** The form an error takes when it crosses a thread boundary. */
export interface FlatError {
  code: string
  statusCode: number
  message: string
}

export function flattenError(err: unknown): FlatError {
  const e = err as { code?: unknown; statusCode?: unknown; message?: unknown }
  const code = typeof e?.code === 'string' && e.code in errorTypes ? e.code : 'PREFIXD_INTERNAL'
  const statusCode = code === 'PREFIXD_INTERNAL' ? 500 : Number(e.statusCode ?? 500)
  const message = typeof e?.message === 'string' ? e.message : String(err)
  return { code, statusCode, message }
}

/** Rebuilds an error received from the engine worker so the HTTP layer can map it. */
export class RemoteError extends Error {
  readonly code: string
  readonly statusCode: number
  constructor(flat: FlatError) {
    super(flat.message)
    this.name = 'RemoteError'
    this.code = flat.code
    this.statusCode = flat.statusCode
  }
}

export function errorTypeOf(code: string | undefined): string {
  return (code !== undefined && errorTypes[code]) || 'internal'
}
