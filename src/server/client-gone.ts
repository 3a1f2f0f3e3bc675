/**
 * Noticing that a client left: a request handler passes this signal to the
 * generation so the engine stops spending steps on an answer nobody reads.
 */
import type { ServerResponse } from 'node:http'

/**
 * An AbortSignal that fires when the client closes the connection before the
 * answer; already aborted if it closed before this was asked (while the
 * request was being prepared), since that 'close' event is gone.
 */
export function clientGone(raw: ServerResponse): AbortSignal {
  const ctl = new AbortController()
  // A finished request body is no sign of a gone client; a destroyed response or socket is.
  if (!raw.writableEnded && (raw.destroyed || raw.socket?.destroyed === true)) {
    ctl.abort()
    return ctl.signal
  }
  raw.on('close', () => {
    if (!raw.writableEnded) ctl.abort()
  })
  return ctl.signal
}
