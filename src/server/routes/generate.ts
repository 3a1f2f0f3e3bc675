/**
 * POST /generate: the request shape Hugging Face TGI and LoRAX clients use,
 * with `prefix_id` (or `adapter_id`) naming the prefix.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../schemas/common.js'
import { GenerateBody, GenerateResponse } from '../schemas/generate.js'

/** An AbortSignal that fires when the client closes the connection before the answer. */
export function clientGone(raw: import('node:http').ServerResponse): AbortSignal {
  const ctl = new AbortController()
  raw.on('close', () => {
    if (!raw.writableEnded) ctl.abort()
  })
  return ctl.signal
}

export const generateRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/generate',
    {
      schema: {
        summary: 'Generate text, optionally steered by one or more prefixes',
        body: GenerateBody,
        response: { 200: GenerateResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      const service = app.generation
      const prepared = await service.prepare(request.body)
      const result = await service.run(prepared, clientGone(reply.raw))
      const prefixIds = prepared.prefixes.map((p) => p.id)
      void reply.header('x-prefix-id', prefixIds.join(','))
      void reply.header('x-generated-tokens', String(result.tokens.length))
      const generated_text = (prepared.returnFullText ? request.body.inputs : '') + result.generatedText
      if (!prepared.details) return { generated_text }
      return {
        generated_text,
        details: {
          finish_reason: result.finishReason,
          generated_tokens: result.tokens.length,
          seed: prepared.params.doSample ? prepared.params.seed : null,
          prefix_id: prefixIds.length > 0 ? prefixIds : null,
          tokens: result.tokens,
        },
      }
    },
  )
}
