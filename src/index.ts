/**
 * Process entry for `prefixd serve`: read the configuration, build the app,
 * listen, and shut down gracefully. If the engine worker dies the process
 * exits non-zero so its supervisor restarts it (never re-created in-process).
 */
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import { loadConfig } from './config/load-config.js'
import { resolveModelDir } from './models/default-model.js'
import { drainOnSignal } from './server/drain.js'

export async function serve(env: NodeJS.ProcessEnv = process.env): Promise<FastifyInstance> {
  const config = loadConfig(env)
  const modelDir = resolveModelDir(config)
  const app = await buildApp({ config, modelDir })
  app.engine.on('died', () => {
    app.log.fatal('exiting: the engine worker died')
    process.exitCode = 1
    void app.close().finally(() => process.exit(1))
  })
  const stop = drainOnSignal(app, {
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    log: (msg) => app.log.info(msg),
    exit: (code) => process.exit(code),
  })
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  try {
    await app.listen({ host: config.HOST, port: config.PORT })
  } catch (err) {
    // Serving nothing while alive would fool a supervisor: stop the engine
    // worker (it would keep the process running) and fail the start.
    await app.close()
    throw listenError(err, config.HOST, config.PORT)
  }
  // Fastify only logs a failed onListen hook: a metrics port that could not be
  // opened must fail the start the same way the API port does.
  if (app.metricsServer !== null && !app.metricsServer.listening) {
    await app.close()
    throw new Error(`cannot listen on ${config.HOST}:${config.METRICS_PORT} (METRICS_PORT): the address is in use or not allowed`)
  }
  return app
}

/** One line that says what to do about a failed listen. */
function listenError(err: unknown, host: string, port: number): Error {
  const code = (err as { code?: string }).code
  if (code === 'EADDRINUSE') return new Error(`cannot listen on ${host}:${port}: the address is already in use (EADDRINUSE); set PORT to a free port`)
  if (code === 'EACCES') return new Error(`cannot listen on ${host}:${port}: permission denied (EACCES); use a port above 1023`)
  return err instanceof Error ? err : new Error(String(err))
}
