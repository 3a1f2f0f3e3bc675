/**
 * Server-sent events on a raw Node response: one `data:` line per event.
 *
 * The stream opens (status 200, event-stream headers) only with its first
 * event that must go out, normally the first token. Until then the reply is an
 * ordinary Fastify reply, so every error known before the first token (a full
 * queue, a deadline, a missing prefix, a poisoned prefix) is a plain HTTP
 * error with its own status and JSON body, never a 200 carrying an error
 * event. Opening hijacks the reply: Fastify's serializer and hooks stay out.
 */
import type { ServerResponse } from 'node:http'
import type { FastifyReply } from 'fastify'

function writeHead(raw: ServerResponse, headers: Record<string, string>): void {
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    // Proxies (nginx) must pass events through as they come.
    'x-accel-buffering': 'no',
    ...headers,
  })
}

function frame(data: unknown): string {
  return `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`
}

export class EventStream {
  private opened = false
  /** Events made before the stream opened (OpenAI's role or echo chunks), sent when it opens. */
  private readonly held: string[] = []

  constructor(
    private readonly reply: FastifyReply,
    private readonly headers: Record<string, string> = {},
  ) {}

  get started(): boolean {
    return this.opened
  }

  /** Queues an event for when the stream opens, without opening it. */
  hold(data: unknown): void {
    if (this.opened) this.send(data)
    else this.held.push(frame(data))
  }

  /** Sends an event, opening the stream first if it is not open yet. */
  send(data: unknown): void {
    this.open()
    const raw = this.reply.raw
    if (!raw.writableEnded && !raw.destroyed) raw.write(frame(data))
  }

  /** Opens the stream (if not yet) and ends it. */
  end(): void {
    this.open()
    this.reply.raw.end()
  }

  private open(): void {
    if (this.opened) return
    this.opened = true
    void this.reply.hijack()
    const raw = this.reply.raw
    if (raw.destroyed) return
    writeHead(raw, this.headers)
    for (const f of this.held.splice(0)) raw.write(f)
  }
}
