/**
 * POST /: TGI's root route, where huggingface_hub's InferenceClient
 * (`base_url=...`, `text_generation`) and TGI's own Python client post. The
 * body is a /generate body plus `stream`: with `stream: true` the answer is
 * /generate_stream's event stream, otherwise a JSON array holding one
 * /generate answer (TGI's CompatGenerateRequest). Validation, auth, metrics
 * and errors are those of the two routes it stands for.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { errorResponses, nullable } from '../schemas/common.js'
import { GenerateParameters, GenerateResponse } from '../schemas/generate.js'
import { answerGenerate } from './generate.js'
import { streamGenerate } from './generate-stream.js'

const CompatGenerateBody = Type.Object(
  {
    inputs: Type.String({ description: 'The prompt.' }),
    parameters: Type.Optional(GenerateParameters),
    stream: nullable(Type.Boolean({ description: 'true: answer as /generate_stream does; else as /generate, in a one-element array.' })),
  },
  { additionalProperties: false },
)

export const tgiRootRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/',
    {
      schema: {
        summary: "TGI's root route: /generate's answer in an array, or /generate_stream's events when stream is true",
        body: CompatGenerateBody,
        response: {
          200: {
            description: 'JSON: an array of one /generate answer; with "stream": true, /generate_stream\'s server-sent events',
            content: {
              'application/json': { schema: Type.Array(GenerateResponse, { minItems: 1, maxItems: 1 }) },
              'text/event-stream': { schema: Type.String({ description: 'data: {token, generated_text, details} lines, as /generate_stream' }) },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { stream, ...body } = request.body
      if (stream === true) return streamGenerate(app, request, reply, body)
      return [await answerGenerate(app, request, reply, body)]
    },
  )
}
