/**
 * POST /generate: the request shape Hugging Face TGI and LoRAX clients use,
 * with `prefix_id` (or `adapter_id`) naming the prefix.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errorResponses } from '../schemas/common.js'
import { GenerateBody, GenerateResponse, type GenerateBodyT } from '../schemas/generate.js'
import type { GenerationResult } from '../generation-service.js'
import { clientGone } from '../client-gone.js'
import { fromGenerateBody } from '../tgi-request.js'

const ms = (a: number | undefined, b: number) => (a === undefined ? '' : (a - b).toFixed(3))

/** TGI's response headers: who served it and how long each part took (ms). */
function timingHeaders(prefixIds: string[], promptTokens: number, result: GenerationResult): Record<string, string> {
  const t = result.timings
  return {
    'x-prefix-id': prefixIds.join(','),
    'x-prompt-tokens': String(promptTokens),
    'x-generated-tokens': String(result.tokens.length),
    'x-queue-time': ms(t.admittedAt, t.arrivedAt),
    'x-time-to-first-token': ms(t.firstTokenAt, t.arrivedAt),
    'x-total-time': ms(t.finishedAt, t.arrivedAt),
  }
}

/**
 * One /generate answer: TGI's JSON object. Shared with POST /, which sends the
 * same answer inside a one-element array.
 */
export async function answerGenerate(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, body: GenerateBodyT) {
  const service = app.generation
  const details = body.parameters?.details ?? false
  const gone = clientGone(reply.raw)
  // Without details no logprob is returned: don't pay for computing them.
  const prepared = await service.prepare(fromGenerateBody(body, details), request.principal, gone)
  const result = await service.run(prepared, gone, request.log)
  const prefixIds = prepared.prefixes.map((p) => p.id)
  void reply.headers(timingHeaders(prefixIds, prepared.promptIds.length, result))
  const generated_text = (body.parameters?.return_full_text ? body.inputs : '') + result.generatedText
  if (!details) return { generated_text }
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
    async (request, reply) => answerGenerate(app, request, reply, request.body),
  )
}
