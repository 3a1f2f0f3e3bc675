/**
 * Graceful shutdown: once draining, /ready says so (503) and new work is
 * refused with 503, while requests already running (streams included) finish.
 * Probes and metrics keep answering so the orchestrator sees what happens.
 */
import type { FastifyInstance } from 'fastify'
import { NotReadyError } from '../errors.js'
import { isProbe } from './probe-route.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Set by the first shutdown signal; never cleared. */
    draining: boolean
  }
}

export function refuseNewWorkWhileDraining(app: FastifyInstance): void {
  app.decorate('draining', false)
  app.readiness.report('drain', () => (app.draining ? 'the server is shutting down' : null))
  app.addHook('onRequest', async (request) => {
    if (app.draining && !isProbe(request)) {
      throw new NotReadyError('the server is shutting down; retry on another replica')
    }
  })
  // Clients must not reuse a connection to a server that is going away.
  app.addHook('onSend', async (_request, reply) => {
    if (app.draining) void reply.header('connection', 'close')
  })
}

/** Resolves once no generation is in flight (checked every 50 ms). */
function whenIdle(app: FastifyInstance): Promise<void> {
  return new Promise((resolve) => {
    const check = () => (app.generation.inFlight === 0 ? resolve() : setTimeout(check, 50).unref())
    check()
  })
}

export interface DrainOptions {
  timeoutMs: number
  log: (msg: string) => void
  exit: (code: number) => void
}

/**
 * Returns the signal handler: the first signal drains and closes (exit 0),
 * a second one or the timeout ends the process at once (exit 1).
 */
export function drainOnSignal(app: FastifyInstance, opts: DrainOptions): (signal: string) => void {
  let stopping = false
  // Exiting while the worker is inside ONNX Runtime aborts the process (a
  // native error at teardown): stop the worker first, at most one forward
  // pass away, then exit.
  const hardExit = () => void app.engine.close().finally(() => opts.exit(1))
  return (signal) => {
    if (stopping) {
      opts.log(`${signal} again: exiting now`)
      hardExit()
      return
    }
    stopping = true
    app.draining = true
    opts.log(`${signal}: draining in-flight requests (up to ${opts.timeoutMs} ms)`)
    const timer = setTimeout(() => {
      opts.log('drain timeout: exiting now')
      hardExit()
    }, opts.timeoutMs)
    timer.unref()
    // Keep listening while requests finish, so that new ones get a clear 503
    // rather than a refused connection; then close() stops listening, drops
    // idle keep-alive sockets and runs onClose hooks (the engine stops last).
    void whenIdle(app)
      .then(() => app.close())
      .then(
      () => opts.exit(0),
      () => opts.exit(1),
    )
  }
}
