/**
 * Server-sent events on a raw Node response: one `data:` line per event. The
 * route hijacks the reply, so Fastify's serializer and hooks stay out of it.
 */
import type { ServerResponse } from 'node:http'

export function startEventStream(raw: ServerResponse, headers: Record<string, string> = {}): void {
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    // Proxies (nginx) must pass events through as they come.
    'x-accel-buffering': 'no',
    ...headers,
  })
}

export function sendEvent(raw: ServerResponse, data: unknown): void {
  if (!raw.writableEnded && !raw.destroyed) raw.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`)
}
