/**
 * OpenAI's streamed answer: server-sent events of JSON chunks, an error as a
 * last `{"error": {...}}` event when one happens after the first byte, and
 * always `data: [DONE]` at the end. A client that goes away cancels every choice.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { clientGone } from '../client-gone.js'
import { sendEvent, startEventStream } from '../sse.js'
import { toOpenAIError } from './errors.js'

export async function streamAnswer(
  request: FastifyRequest,
  reply: FastifyReply,
  produce: (send: (chunk: unknown) => void, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  void reply.hijack()
  const raw = reply.raw
  startEventStream(raw)
  try {
    await produce((chunk) => sendEvent(raw, chunk), clientGone(raw))
  } catch (err) {
    if ((err as { code?: string }).code !== 'PREFIXD_CANCELLED') sendEvent(raw, toOpenAIError(err as FastifyError, request).body)
  }
  sendEvent(raw, '[DONE]')
  raw.end()
}
