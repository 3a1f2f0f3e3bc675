import Type, { type Static } from 'typebox'
import { MAX_COUNT, nullable, PrefixId } from './common.js'

const PrefixRef = Type.Union([PrefixId, Type.Array(PrefixId, { minItems: 1, maxItems: 8 })], {
  description: 'A prefix id, or a list of ids whose key/values are concatenated in order. Absent: the base model.',
})

export const GenerateParameters = Type.Object(
  {
    prefix_id: nullable(PrefixRef),
    adapter_id: nullable(PrefixRef),
    max_new_tokens: nullable(Type.Integer({ minimum: 1, maximum: MAX_COUNT, description: 'Most tokens to generate.' })),
    do_sample: nullable(Type.Boolean({ description: 'Sample instead of greedy decoding.' })),
    temperature: nullable(Type.Number({ exclusiveMinimum: 0, description: 'Softmax temperature (> 0).' })),
    top_k: nullable(Type.Integer({ minimum: 1, maximum: MAX_COUNT, description: 'Sample among the k most likely tokens.' })),
    top_p: nullable(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'Nucleus sampling mass, in (0, 1].' })),
    repetition_penalty: nullable(Type.Number({ exclusiveMinimum: 0, description: 'CTRL repetition penalty (1 = off).' })),
    seed: nullable(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Sampling seed.' })),
    stop: nullable(Type.Array(Type.String({ minLength: 1 }), { description: 'Stop sequences: generation ends when one appears.' })),
    details: nullable(Type.Boolean({ description: 'Return per-token details.' })),
    return_full_text: nullable(Type.Boolean({ description: 'Prepend the prompt to generated_text.' })),
  },
  { additionalProperties: false },
)

export const GenerateBody = Type.Object(
  {
    inputs: Type.String({ description: 'The prompt.' }),
    parameters: Type.Optional(GenerateParameters),
  },
  { additionalProperties: false },
)
export type GenerateBodyT = Static<typeof GenerateBody>

export const TokenSchema = Type.Object({
  id: Type.Integer(),
  text: Type.String(),
  logprob: Type.Number(),
  special: Type.Boolean(),
})

export const GenerateResponse = Type.Object({
  generated_text: Type.String(),
  details: Type.Optional(
    Type.Object({
      finish_reason: Type.Enum(['length', 'eos_token', 'stop_sequence']),
      generated_tokens: Type.Integer(),
      seed: Type.Union([Type.Integer(), Type.Null()], { description: 'The seed used when sampling; null for greedy.' }),
      prefix_id: Type.Union([Type.Array(Type.String()), Type.Null()]),
      tokens: Type.Array(TokenSchema),
    }),
  ),
})
