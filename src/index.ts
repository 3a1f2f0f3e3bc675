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
  await app.listen({ host: config.HOST, port: config.PORT })
  return app
}
