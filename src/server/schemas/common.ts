import Type, { type TSchema } from 'typebox'
import { PREFIX_ID_PATTERN, PREFIX_ID_RULE } from '../../domain/prefix-id.js'

/**
 * An optional field that also accepts JSON null as "not set": TGI's own
 * clients send every unset parameter as null. Nothing is coerced: null stays
 * null and the handler treats it as absent.
 */
export const nullable = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]))

/**
 * The largest count any numeric request field accepts (tokens, top_k): a
 * 32-bit signed integer. Far beyond every model's positions or vocabulary, so
 * it refuses nothing real, and it keeps every count an exact, safe integer
 * (2^53 and above are not: they once reached the sampler and answered 500).
 */
export const MAX_COUNT = 2 ** 31 - 1

export const PrefixId = Type.String({
  pattern: PREFIX_ID_PATTERN,
  description: `A prefix id: ${PREFIX_ID_RULE}.`,
})

export const ErrorBody = Type.Object(
  {
    error: Type.String({ description: 'What went wrong, for a person.' }),
    error_type: Type.String({ description: 'Stable machine-readable kind: validation, not_found, overloaded, ...' }),
  },
  { $id: 'ErrorBody', description: 'Every error response of the TGI-style routes.' },
)

/** The error statuses every route may answer with. */
export const errorResponses = {
  400: ErrorBody,
  401: ErrorBody,
  403: ErrorBody,
  404: ErrorBody,
  413: ErrorBody,
  415: ErrorBody,
  422: ErrorBody,
  429: ErrorBody,
  500: ErrorBody,
  503: ErrorBody,
  504: ErrorBody,
}
