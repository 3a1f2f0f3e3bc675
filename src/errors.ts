/**
 * The HTTP side's error classes (@fastify/error), one per row of the error
 * table in domain/error-table.ts, which alone holds each code's status and
 * `error_type`. The engine worker never imports this module: it raises flat
 * errors from the same table without loading Fastify.
 */
import createError from '@fastify/error'
import { errorTable, type ErrorCode } from './domain/error-table.js'

type Msg = [string?, string?, string?]

/** A class for one table row: its status is the row's, its message format '%s' unless given. */
function errorClass<C extends ErrorCode>(code: C, format = '%s') {
  return createError<C, (typeof errorTable)[C]['status'], Msg>(code, format, errorTable[code].status)
}

export const ValidationError = errorClass('PREFIXD_VALIDATION')
export const PromptTooLongError = errorClass('PREFIXD_PROMPT_TOO_LONG')
export const PrefixNotFoundError = errorClass('PREFIXD_PREFIX_NOT_FOUND', "prefix '%s' not found")
export const InvalidPrefixError = errorClass('PREFIXD_INVALID_PREFIX')
export const PrefixShapeMismatchError = errorClass('PREFIXD_PREFIX_SHAPE_MISMATCH')
export const PayloadTooLargeError = errorClass('PREFIXD_PAYLOAD_TOO_LARGE')
export const NotReadyError = errorClass('PREFIXD_NOT_READY')
export const CancelledError = errorClass('PREFIXD_CANCELLED')
export const UnauthorizedError = errorClass('PREFIXD_UNAUTHORIZED')
export const ForbiddenError = errorClass('PREFIXD_FORBIDDEN')
export const QuotaExceededError = errorClass('PREFIXD_QUOTA_EXCEEDED')
export const RateLimitedError = errorClass('PREFIXD_RATE_LIMITED')
export const ConfigError = errorClass('PREFIXD_CONFIG')
export const PrefixExistsError = errorClass('PREFIXD_PREFIX_EXISTS')
export const StoreUnavailableError = errorClass('PREFIXD_STORE_UNAVAILABLE')
export const UnsupportedMediaTypeError = errorClass('PREFIXD_UNSUPPORTED_MEDIA_TYPE')
export const UriTooLongError = errorClass('PREFIXD_URI_TOO_LONG')

