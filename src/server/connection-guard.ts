/**
 * Limits on what a client may hold: read timeouts for headers and for the
 * whole request (a half-sent request is closed with 408, not held forever),
 * a keep-alive timeout, a cap on open connections under the open-file limit,
 * and a cap per client address, so that one client holding all it may still
 * leaves room for everyone else, the health probes included.
 */
import type { Server, ServerOptions } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/schema.js'

type Limits = Pick<Config, 'HEADERS_TIMEOUT_MS' | 'REQUEST_READ_TIMEOUT_MS' | 'KEEP_ALIVE_TIMEOUT_MS' | 'MAX_CONNECTIONS' | 'MAX_CONNECTIONS_PER_CLIENT'>

/** Fastify's server options for the timeouts (Node applies them; Fastify's default turns the request timeout off). */
export function timeoutOptions(c: Limits): { requestTimeout: number; keepAliveTimeout: number; http: ServerOptions } {
  // Node refuses a headers timeout longer than the request timeout.
  const headersTimeout = Math.min(c.HEADERS_TIMEOUT_MS, c.REQUEST_READ_TIMEOUT_MS)
  return {
    requestTimeout: c.REQUEST_READ_TIMEOUT_MS,
    keepAliveTimeout: c.KEEP_ALIVE_TIMEOUT_MS,
    http: {
      // Given here too: Node checks the headers timeout against it when the server is made.
      requestTimeout: c.REQUEST_READ_TIMEOUT_MS,
      headersTimeout,
      // Node checks the two timeouts on this period (30 s by default): a quarter
      // of the shorter one keeps a stalled client's overstay small.
      connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(headersTimeout / 4))),
    },
  }
}

/** Caps connections in total (Node's maxConnections) and per client address. */
export function capConnections(server: Server, c: Limits, log: FastifyBaseLogger): void {
  server.maxConnections = c.MAX_CONNECTIONS
  const perClient = c.MAX_CONNECTIONS_PER_CLIENT
  if (perClient === 0) return
  const open = new Map<string, number>()
  let refusedSinceLog = 0
  server.on('connection', (socket: Socket) => {
    const who = socket.remoteAddress ?? ''
    const held = open.get(who) ?? 0
    if (held >= perClient) {
      // Logged once per burst, not once per refused socket: a flood must not flood the log.
      if (refusedSinceLog++ === 0) log.warn({ client: who, limit: perClient }, 'client over its connection limit: new connections closed')
      socket.destroy()
      return
    }
    refusedSinceLog = 0
    open.set(who, held + 1)
    socket.once('close', () => {
      const left = (open.get(who) ?? 1) - 1
      if (left === 0) open.delete(who)
      else open.set(who, left)
    })
  })
}
