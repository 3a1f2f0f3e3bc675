/**
 * Every error prefixd raises on purpose, in one table: its code, HTTP status
 * and the stable `error_type` clients switch on (TGI's vocabulary where it has
 * one: validation → 422, overloaded → 429). The HTTP catalog (src/errors.ts)
 * and the engine's flat errors are both made from these rows, so a code's
 * status and type are written once. Anything not listed here is an internal
 * error and surfaces as a 500 whose body never carries the original message.
 * Imports nothing: the engine worker reads it without loading the HTTP stack.
 */

export const errorTable = {
  PREFIXD_VALIDATION: { status: 422, type: 'validation' },
  PREFIXD_PROMPT_TOO_LONG: { status: 422, type: 'validation' },
  PREFIXD_PREFIX_NOT_FOUND: { status: 404, type: 'not_found' },
  /** A prefix file that is malformed: bad safetensors, missing tensors, bad dtype, NaN, pickle... */
  PREFIXD_INVALID_PREFIX: { status: 422, type: 'invalid_prefix' },
  /** A well-formed prefix that was trained for a different model shape. */
  PREFIXD_PREFIX_SHAPE_MISMATCH: { status: 422, type: 'prefix_mismatch' },
  PREFIXD_PAYLOAD_TOO_LARGE: { status: 413, type: 'payload_too_large' },
  PREFIXD_OVERLOADED: { status: 429, type: 'overloaded' },
  PREFIXD_DEADLINE_EXCEEDED: { status: 504, type: 'deadline_exceeded' },
  PREFIXD_NOT_READY: { status: 503, type: 'unavailable' },
  PREFIXD_CANCELLED: { status: 499, type: 'cancelled' },
  PREFIXD_UNAUTHORIZED: { status: 401, type: 'unauthorized' },
  PREFIXD_FORBIDDEN: { status: 403, type: 'forbidden' },
  PREFIXD_QUOTA_EXCEEDED: { status: 413, type: 'quota_exceeded' },
  PREFIXD_RATE_LIMITED: { status: 429, type: 'rate_limited' },
  PREFIXD_MODEL_LOAD: { status: 500, type: 'internal' },
  PREFIXD_CONFIG: { status: 500, type: 'internal' },
  /** POST /prefixes with an id that is taken: replacing is PUT's job. */
  PREFIXD_PREFIX_EXISTS: { status: 409, type: 'conflict' },
  /** The prefix store (Redis) cannot be reached: uploads and cache misses fail fast instead of hanging. */
  PREFIXD_STORE_UNAVAILABLE: { status: 503, type: 'store_unavailable' },
  PREFIXD_UNSUPPORTED_MEDIA_TYPE: { status: 415, type: 'validation' },
  /** A path segment (a prefix or model id) longer than any valid id, however encoded. */
  PREFIXD_URI_TOO_LONG: { status: 414, type: 'validation' },
} as const satisfies Record<string, { status: number; type: string }>

export type ErrorCode = keyof typeof errorTable

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(errorTable, code)
}

/** code → stable error_type in responses; unknown codes are internal errors. */
export function errorTypeOf(code: string | undefined): string {
  return isErrorCode(code) ? errorTable[code].type : 'internal'
}

/** The form an error takes when it crosses a thread boundary. */
export interface FlatError {
  code: string
  statusCode: number
  message: string
}

/** A flat error with one of our codes, its status read from the table. */
export function flatError(code: ErrorCode, message: string): FlatError {
  return { code, statusCode: errorTable[code].status, message }
}

export function flattenError(err: unknown): FlatError {
  const e = err as { code?: unknown; statusCode?: unknown; message?: unknown }
  const code = isErrorCode(e?.code) ? e.code : 'PREFIXD_INTERNAL'
  const statusCode = code === 'PREFIXD_INTERNAL' ? 500 : Number(e.statusCode ?? 500)
  const message = typeof e?.message === 'string' ? e.message : String(err)
  return { code, statusCode, message }
}

/**
 * An error with one of our codes, thrown where the HTTP catalog must not be
 * loaded (the engine worker) and rebuilt on the HTTP thread from a FlatError.
 * It carries `code` and `statusCode` like the catalog's classes, so the error
 * handlers treat both alike.
 */
export class CodedError extends Error {
  readonly code: string
  readonly statusCode: number
  constructor(flat: FlatError) {
    super(flat.message)
    this.name = 'CodedError'
    this.code = flat.code
    this.statusCode = flat.statusCode
  }
}
