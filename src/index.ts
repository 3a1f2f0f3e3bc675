/**
 * Process entry for `prefixd serve`: read the configuration, build the app,
 * listen, and shut down gracefully. If the engine worker dies the process
 * exits non-zero so its supervisor restarts it (never re-created in-process).
 */
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import { loadConfig } from './config/load-config.js'
import { resolveModelDir } from './models/default-model.js'

export async function serve(env: NodeJS.ProcessEnv = process.env): Promise<FastifyInstance> {
  const config = loadConfig(env)
  const modelDir = await resolveModelDir(config, (msg) => process.stderr.write(`${msg}\n`))
  const app = await buildApp({ config, modelDir })
  app.engine.on('died', () => {
    app.log.fatal('exiting: the engine worker died')
    process.exitCode = 1
    void app.close().finally(() => process.exit(1))
  })
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) {
      app.log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    app.draining = true
    app.log.info({ signal }, 'shutting down')
    const timer = setTimeout(() => {
      app.log.error('shutdown timed out')
      process.exit(1)
    }, config.SHUTDOWN_TIMEOUT_MS)
    timer.unref()
    void app.close().then(() => process.exit(0))
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  await app.listen({ host: config.HOST, port: config.PORT })
  return app
}
