/**
 * What Hugging Face's @huggingface/inference client adds to a TGI request:
 * textGenerationStream sends `"stream": true` beside inputs and parameters
 * (TGI itself ignores it on /generate_stream). On that route, and with that
 * value only, the field is dropped before the strict schema sees the body;
 * every other unknown field is still an error.
 */
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

export const tgiClientCompat = fp(
  async (app: FastifyInstance) => {
    app.addHook('preValidation', async (request) => {
      if (request.routeOptions.url !== '/generate_stream') return
      const body = request.body as Record<string, unknown> | null
      if (body !== null && typeof body === 'object' && body.stream === true) delete body.stream
    })
  },
  { name: 'prefixd-tgi-client-compat' },
)
