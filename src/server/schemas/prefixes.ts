/**
 * The /prefixes API's shapes. Uploads are multipart (files + the fields `id`
 * and `description`), read by the route itself; everything else is JSON, with
 * a response schema for every status.
 */
import Type, { type Static } from 'typebox'
import { ADAPTER_KINDS } from '../../prefixes/adapter-kinds.js'
import { ErrorBody, errorResponses, PrefixId } from './common.js'

export const PrefixMetadata = Type.Object(
  {
    id: Type.String(),
    version: Type.Integer({ description: '1 for the first upload, one more per replacement.' }),
    sha256: Type.String({ description: 'sha256 of the stored native file: identifies this version.' }),
    kind: Type.Enum(
      ADAPTER_KINDS.map((k) => k.name),
      { description: `The adapter kind (${ADAPTER_KINDS.map((k) => `${k.name}: PEFT ${k.peftType}`).join('; ')}).` },
    ),
    num_virtual_tokens: Type.Integer({ description: 'Positions the adapter takes ahead of the prompt.' }),
    num_layers: Type.Optional(Type.Integer({ description: 'prefix only.' })),
    num_kv_heads: Type.Optional(Type.Integer({ description: 'prefix only.' })),
    head_dim: Type.Optional(Type.Integer({ description: 'prefix only.' })),
    hidden_size: Type.Optional(Type.Integer({ description: 'prompt_tuning and p_tuning: the width of each virtual token.' })),
    dtype: Type.String({ description: 'The dtype the values were uploaded in (stored as F32).' }),
    bytes: Type.Integer({ description: 'Size of the stored native file.' }),
    format: Type.Union([Type.Literal('peft'), Type.Literal('native')], { description: 'The uploaded format.' }),
    description: Type.String(),
    owner: Type.String({ description: 'The tenant that uploaded it.' }),
    visibility: Type.Enum(['public', 'private'], { description: 'private: its owner only; public: every tenant may generate with it.' }),
    source: Type.Union([Type.Literal('upload'), Type.Literal('folder')]),
    created_at: Type.String({ description: 'ISO 8601, UTC.' }),
    updated_at: Type.String({ description: 'ISO 8601, UTC: when this version was stored.' }),
  },
  { additionalProperties: false },
)

export const PrefixList = Type.Object({
  prefixes: Type.Array(PrefixMetadata),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as ?cursor= for the next page; null on the last page.' }),
})

export const MAX_PAGE = 1000

export const ListQuery = Type.Object(
  {
    cursor: Type.Optional(PrefixId),
    // Query strings are text and nothing is coerced: the number is checked as digits.
    limit: Type.Optional(Type.String({ pattern: '^(1000|[1-9][0-9]{0,2})$', description: `Page size, 1-${MAX_PAGE} (default 100).` })),
  },
  { additionalProperties: false },
)

export const IdParams = Type.Object({ id: PrefixId }, { additionalProperties: false })
export type IdParamsT = Static<typeof IdParams>

/** The statuses every /prefixes route may answer with besides its own. */
export const storeErrors = {
  ...errorResponses,
  406: ErrorBody,
  409: ErrorBody,
}
