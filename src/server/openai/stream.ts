/**
 * OpenAI's streamed answer: server-sent events of JSON chunks, an error as a
 * last `{"error": {...}}` event when one happens after the first token, and
 * always `data: [DONE]` at the end. A client that goes away cancels every choice.
 *
 * Chunks a route makes before it awaits anything (the role chunk, the echo)
 * are held until the first token opens the stream: an error found before it
 * (a full queue, a deadline) is then an ordinary HTTP error, as OpenAI answers.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { clientGone } from '../client-gone.js'
import { EventStream } from '../sse.js'
import { toOpenAIError } from './errors.js'

export async function streamAnswer(
  request: FastifyRequest,
  reply: FastifyReply,
  produce: (send: (chunk: unknown) => void, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const stream = new EventStream(reply)
  let preamble = true
  try {
    const producing = produce((chunk) => (preamble ? stream.hold(chunk) : stream.send(chunk)), clientGone(reply.raw))
    // produce's synchronous part is over: whatever it sends from now on comes with or after a token.
    preamble = false
    await producing
  } catch (err) {
    if (!stream.started) throw err
    if ((err as { code?: string }).code !== 'PREFIXD_CANCELLED') stream.send(toOpenAIError(err as FastifyError, request).body)
  }
  stream.send('[DONE]')
  stream.end()
}
