/**
 * Noticing that a client left: a request handler passes this signal to the
 * generation so the engine stops spending steps on an answer nobody reads.
 */
import type { ServerResponse } from 'node:http'

/** An AbortSignal that fires when the client closes the connection before the answer. */
export function clientGone(raw: ServerResponse): AbortSignal {
  const ctl = new AbortController()
  raw.on('close', () => {
    if (!raw.writableEnded) ctl.abort()
  })
  return ctl.signal
}
