/**
 * POST /generate_stream: TGI's server-sent events. One event per token
 * (`index`, `token`), the last one also with `generated_text` and `details`.
 * Errors found before the first token (a full queue or a deadline included)
 * are ordinary JSON answers; errors after it arrive as a final
 * `{error, error_type}` event. A client that disconnects
 * cancels its request, and the engine frees its slot at the next step.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { publicError } from '../error-handler.js'
import { errorResponses } from '../schemas/common.js'
import { GenerateBody, type GenerateBodyT } from '../schemas/generate.js'
import { clientGone } from '../client-gone.js'
import { EventStream } from '../sse.js'
import { fromGenerateBody } from '../tgi-request.js'

export const generateStreamRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/generate_stream',
    {
      schema: {
        summary: 'Generate text as server-sent events, one per token (TGI format)',
        body: GenerateBody,
        response: { ...errorResponses },
      },
    },
    async (request, reply) => streamGenerate(app, request, reply, request.body),
  )
}

/** TGI's event stream for one request. Shared with POST /, which streams the same when the body says `stream: true`. */
export async function streamGenerate(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, body: GenerateBodyT): Promise<void> {
  const service = app.generation
  const gone = clientGone(reply.raw)
  // Every event shows its token's logprob.
  const prepared = await service.prepare(fromGenerateBody(body, true), request.principal, gone)
  const promptShown = body.parameters?.return_full_text ? body.inputs : ''
  const prefixIds = prepared.prefixes.map((p) => p.id)
  const stream = new EventStream(reply, { 'x-prefix-id': prefixIds.join(','), 'x-prompt-tokens': String(prepared.promptIds.length) })
  let index = 0
  try {
    await service.run(prepared, gone, request.log, (e) => {
      index++
      const last = e.finish
      stream.send({
        index,
        token: e.token,
        generated_text: last ? promptShown + last.generatedText : null,
        details: last
          ? {
              finish_reason: last.reason,
              generated_tokens: index,
              seed: prepared.params.doSample ? prepared.params.seed : null,
              prefix_id: prefixIds.length > 0 ? prefixIds : null,
            }
          : null,
      })
    })
  } catch (err) {
    // Nothing sent yet: the error handler answers with the error's own status.
    if (!stream.started) throw err
    const e = err as { code?: string; statusCode?: number; message?: string }
    if (e.code !== 'PREFIXD_CANCELLED') {
      const shown = publicError(e, request.log)
      stream.send({ error: shown.message, error_type: shown.errorType })
    }
  }
  stream.end()
}
