/**
 * Request and response shapes of the OpenAI-compatible routes (/v1/...).
 * Fields prefixd does not implement but that OpenAI clients may send are
 * declared here with their OpenAI types and checked for neutral values by
 * openai/unsupported-fields.ts; anything else unknown is a 400 naming it.
 */
import Type, { type Static, type TSchema } from 'typebox'
import { MAX_COUNT } from './common.js'

const opt = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]))

const ModelName = Type.String({
  minLength: 1,
  description: "The base model's name (GET /v1/models lists it) for no prefix, or a prefix id: the prefix steers the base model.",
})

const Stop = Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }))], {
  description: 'Stop sequences, at most MAX_STOP_SEQUENCES (8 by default). As in OpenAI, the stop sequence itself is not part of the returned text.',
})

const StreamOptions = Type.Object(
  { include_usage: Type.Optional(Type.Boolean({ description: 'Send a last chunk with `usage` and no choices before [DONE].' })) },
  { additionalProperties: false, description: 'Options of a streamed answer.' },
)

/** Sampling fields the completion and chat routes share. */
const samplingFields = {
  model: ModelName,
  max_tokens: opt(Type.Integer({ minimum: 1, maximum: MAX_COUNT, description: 'Most tokens to generate (completions: 16 by default, as OpenAI; chat: the server default).' })),
  temperature: opt(Type.Number({ minimum: 0, maximum: 2, description: '0 is greedy decoding; above 0 samples at that temperature. Default 1 (sampling), as OpenAI.' })),
  top_p: opt(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'Nucleus sampling mass in (0, 1]; ignored when temperature is 0.' })),
  n: opt(Type.Integer({ minimum: 1, maximum: 16, description: 'How many independent choices to generate (with temperature 0 they are identical).' })),
  stream: opt(Type.Boolean({ description: 'Answer as server-sent events, ending with `data: [DONE]`.' })),
  stream_options: opt(StreamOptions),
  stop: opt(Stop),
  seed: opt(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Sampling seed: choice i uses seed + i, so a request is reproducible.' })),
  user: Type.Optional(Type.String({ description: 'Accepted and ignored (the caller is known from its API key).' })),
  frequency_penalty: opt(Type.Number({ minimum: -2, maximum: 2, description: 'Not implemented: only 0 is accepted.' })),
  presence_penalty: opt(Type.Number({ minimum: -2, maximum: 2, description: 'Not implemented: only 0 is accepted.' })),
  logit_bias: opt(Type.Record(Type.String(), Type.Number(), { description: 'Not implemented: only an empty object is accepted.' })),
}

export const CompletionBody = Type.Object(
  {
    ...samplingFields,
    prompt: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1, maxItems: 16 })], {
      description: 'The prompt, or up to 16 prompts: n choices per prompt, prompt i giving choices i·n to i·n + n - 1.',
    }),
    logprobs: opt(Type.Integer({ minimum: 0, maximum: 5, description: "Include each token's log probability and, per token, the `logprobs` most likely tokens (plus the chosen one) in top_logprobs." })),
    echo: opt(Type.Boolean({ description: "Prepend the prompt to the returned text; with logprobs, the prompt's tokens are scored too (the first one null)." })),
    best_of: opt(Type.Integer({ minimum: 1, maximum: MAX_COUNT, description: 'Not implemented: only 1 (or equal to n) is accepted.' })),
    suffix: opt(Type.String({ description: 'Not implemented: only an empty string is accepted.' })),
  },
  { additionalProperties: false, description: 'An OpenAI completions request.' },
)
export type CompletionBodyT = Static<typeof CompletionBody>

const TextPart = Type.Object(
  { type: Type.Literal('text'), text: Type.String() },
  { additionalProperties: false, description: 'A text part of a message (the only kind of part a text model takes).' },
)

export const ChatMessage = Type.Object(
  {
    role: Type.Enum(['system', 'developer', 'user', 'assistant', 'tool'], { description: "Who speaks; passed to the model's chat template as is." }),
    content: Type.Union([Type.String(), Type.Array(TextPart), Type.Null()], { description: 'The text, or text parts that are joined.' }),
    name: Type.Optional(Type.String({ description: "A participant's name, passed to the chat template." })),
  },
  { additionalProperties: false },
)

export const ChatBody = Type.Object(
  {
    ...samplingFields,
    messages: Type.Array(ChatMessage, { minItems: 1, description: "The conversation, rendered with the model's chat_template." }),
    max_completion_tokens: opt(Type.Integer({ minimum: 1, maximum: MAX_COUNT, description: 'Newer name of max_tokens; give at most one of them.' })),
    logprobs: opt(Type.Boolean({ description: "Include each generated token's log probability." })),
    top_logprobs: opt(Type.Integer({ minimum: 0, maximum: 20, description: "With logprobs: how many of the most likely tokens each token's top_logprobs lists." })),
    tools: opt(Type.Array(Type.Unknown(), { description: 'Not implemented: only an empty list is accepted.' })),
    tool_choice: opt(Type.Unknown({ description: 'Not implemented: only "none" or "auto" (with no tools) is accepted.' })),
    parallel_tool_calls: opt(Type.Boolean({ description: 'Accepted and ignored (no tools).' })),
    response_format: opt(Type.Object({ type: Type.String() }, { description: 'Only {"type": "text"} is accepted.' })),
    store: opt(Type.Boolean({ description: 'Not implemented: only false is accepted.' })),
  },
  { additionalProperties: false, description: 'An OpenAI chat completions request.' },
)
export type ChatBodyT = Static<typeof ChatBody>
export type ChatMessageT = Static<typeof ChatMessage>

const Usage = Type.Object({
  prompt_tokens: Type.Integer({ description: 'Tokens of the prompts (each once, whatever n is); a prefix is not counted.' }),
  completion_tokens: Type.Integer({ description: 'Generated tokens over all choices.' }),
  total_tokens: Type.Integer(),
})

const FinishReason = Type.Enum(['stop', 'length'], { description: '"stop": end of text or a stop sequence; "length": max_tokens reached.' })

export const CompletionLogprobs = Type.Object(
  {
    tokens: Type.Array(Type.String()),
    token_logprobs: Type.Array(Type.Union([Type.Number(), Type.Null()]), { description: "null only for the prompt's first token (echo)." }),
    top_logprobs: Type.Array(Type.Union([Type.Record(Type.String(), Type.Number()), Type.Null()]), {
      description: 'Per token, the requested number of most likely tokens and the chosen one, text to logprob; null where token_logprobs is.',
    }),
    text_offset: Type.Array(Type.Integer(), { description: "Where each token starts in the choice's text." }),
  },
  { description: "Log probabilities of the generated tokens (with echo, the prompt's first): the log-softmax of the model's raw logits." },
)

export const CompletionResponse = Type.Object({
  id: Type.String(),
  object: Type.Literal('text_completion'),
  created: Type.Integer({ description: 'Unix time in seconds.' }),
  model: Type.String(),
  choices: Type.Array(
    Type.Object({
      index: Type.Integer(),
      text: Type.String(),
      logprobs: Type.Union([CompletionLogprobs, Type.Null()]),
      finish_reason: FinishReason,
    }),
  ),
  usage: Usage,
})

const TopLogprob = Type.Object({ token: Type.String(), logprob: Type.Number(), bytes: Type.Array(Type.Integer()) })

export const ChatLogprobs = Type.Object({
  content: Type.Array(
    Type.Object({
      token: Type.String(),
      logprob: Type.Number(),
      bytes: Type.Array(Type.Integer(), { description: "The token text's UTF-8 bytes." }),
      top_logprobs: Type.Array(TopLogprob, { description: 'The top_logprobs most likely tokens at this position, most likely first.' }),
    }),
  ),
})

export const ChatResponse = Type.Object({
  id: Type.String(),
  object: Type.Literal('chat.completion'),
  created: Type.Integer({ description: 'Unix time in seconds.' }),
  model: Type.String(),
  choices: Type.Array(
    Type.Object({
      index: Type.Integer(),
      message: Type.Object({ role: Type.Literal('assistant'), content: Type.String() }),
      logprobs: Type.Union([ChatLogprobs, Type.Null()]),
      finish_reason: FinishReason,
    }),
  ),
  usage: Usage,
})

export const ModelObject = Type.Object({
  id: Type.String({ description: 'What to pass as `model`.' }),
  object: Type.Literal('model'),
  created: Type.Integer({ description: 'Unix time in seconds: server start for the base model, upload for a prefix.' }),
  owned_by: Type.String({ description: '"prefixd" for the base model; the owning tenant for a prefix.' }),
  root: Type.String({ description: 'The base model.' }),
  parent: Type.Union([Type.String(), Type.Null()], { description: 'For a prefix, the base model it steers; null for the base model.' }),
})

export const ModelList = Type.Object({ object: Type.Literal('list'), data: Type.Array(ModelObject) })

export const ModelParams = Type.Object({ model: Type.String({ minLength: 1 }) }, { additionalProperties: false })

export const OpenAIErrorBody = Type.Object(
  {
    error: Type.Object({
      message: Type.String({ description: 'What went wrong, for a person.' }),
      type: Type.String({ description: 'invalid_request_error, not_found_error, rate_limit_error, authentication_error, permission_error, server_error, ...' }),
      param: Type.Union([Type.String(), Type.Null()], { description: 'The request field at fault, when one is.' }),
      code: Type.Union([Type.String(), Type.Null()], { description: "prefixd's stable error_type (validation, model_not_found, unsupported_field, overloaded, ...)." }),
    }),
  },
  { $id: 'OpenAIErrorBody', description: 'Every error response of the /v1 routes (OpenAI shape).' },
)

export const openAIErrorResponses = {
  400: OpenAIErrorBody,
  401: OpenAIErrorBody,
  403: OpenAIErrorBody,
  404: OpenAIErrorBody,
  413: OpenAIErrorBody,
  415: OpenAIErrorBody,
  429: OpenAIErrorBody,
  500: OpenAIErrorBody,
  503: OpenAIErrorBody,
  504: OpenAIErrorBody,
}

/**
 * A 200 that is JSON, or server-sent events when the request says stream:
 * both documented, so OpenAPI readers see the streamed form too.
 */
export function jsonOrEventStream<T extends TSchema>(schema: T, chunk: string) {
  return {
    description: `JSON; with "stream": true, server-sent events of ${chunk} objects ending with data: [DONE]`,
    content: {
      'application/json': { schema },
      'text/event-stream': { schema: Type.String({ description: `data: {${chunk}} lines, then data: [DONE]` }) },
    },
  }
}
