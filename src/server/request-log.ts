/**
 * One log line per request at info. Generation requests write theirs when
 * they finish (with prefix, tokens and timings); every other request, and a
 * generation request refused before it ran, is logged here when answered.
 * Headers are never logged, so keys and authorization cannot leak.
 */
import type { FastifyInstance } from 'fastify'
import { wasLogged } from './metrics-plugin.js'

export function addRequestLog(app: FastifyInstance, logPrompts: boolean): void {
  app.addHook('onResponse', async (request, reply) => {
    if (wasLogged(request.log)) return
    request.log.info(
      { method: request.method, url: request.url, statusCode: reply.statusCode, durationMs: Math.round(reply.elapsedTime) },
      'request',
    )
  })
  if (logPrompts) {
    app.addHook('preHandler', async (request) => {
      const body = request.body as { inputs?: unknown } | undefined
      if (typeof body?.inputs === 'string') request.log.debug({ prompt: body.inputs }, 'prompt')
    })
  }
}
