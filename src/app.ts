/**
 * buildApp(config): the Fastify application with its plugins and routes, in
 * order. It never listens: the process entry (index.ts) and the tests do that.
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { readFileSync } from 'node:fs'
import type { Config } from './config/schema.js'
import { errorHandler, notFoundHandler } from './server/error-handler.js'
import { strictAjv } from './server/strict-ajv.js'
import { capConnections, timeoutOptions } from './server/connection-guard.js'
import { frameworkErrors, MAX_PARAM_LENGTH } from './server/openai/framework-errors.js'
import { enginePlugin } from './server/engine-plugin.js'
import { metricsPlugin } from './server/metrics-plugin.js'
import { addRequestLog } from './server/request-log.js'
import { authPlugin } from './server/auth-plugin.js'
import { rateLimitPlugin } from './server/rate-limit-plugin.js'
import { refuseNewWorkWhileDraining } from './server/drain.js'
import { Readiness } from './server/readiness.js'
import { generateRoutes } from './server/routes/generate.js'
import { generateStreamRoutes } from './server/routes/generate-stream.js'
import { tgiRootRoutes } from './server/routes/tgi-root.js'
import { healthRoutes } from './server/routes/health.js'
import { prefixRoutes } from './server/routes/prefixes.js'
import { storePlugin } from './server/store-plugin.js'
import { openAPIPlugin } from './server/openapi-plugin.js'
import { openAIPlugin } from './server/routes/openai-plugin.js'
import { tgiClientCompat } from './server/openai/tgi-client-compat.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    prefixdVersion: string
  }
}

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }

export interface AppOptions {
  config: Config
  /** The model folder to serve (index.ts resolves the default one). */
  modelDir: string
  /** A pino logger instance or options; tests pass false. */
  logger?: boolean | object
}

export async function buildApp({ config, modelDir, logger }: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: logger ?? {
      level: config.LOG_LEVEL,
      redact: ['req.headers.authorization', 'req.headers["x-api-key"]'],
      // JSON lines for machines; readable lines only for a person at a terminal.
      ...(process.stdout.isTTY ? { transport: { target: 'pino-pretty' } } : {}),
    },
    bodyLimit: config.BODY_LIMIT_BYTES,
    // One line per request, written by request-log.ts, instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // Loading and warming up a large model can take minutes: never time it out.
    pluginTimeout: 0,
    // On close, idle keep-alive sockets are closed instead of waited out.
    forceCloseConnections: 'idle',
    // Every valid id routes (Fastify's default limit, 100, is below the longest id);
    // what the router refuses is answered in the documented error shapes.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors,
    // Read timeouts and keep-alive: a client that stalls mid-request is closed.
    ...timeoutOptions(config),
    ajv: strictAjv,
  }).withTypeProvider<TypeBoxTypeProvider>()

  capConnections(app.server, config, app.log)
  app.decorate('config', config)
  app.decorate('prefixdVersion', pkg.version)
  app.decorate('readiness', new Readiness())
  app.setErrorHandler(errorHandler)
  app.setNotFoundHandler(notFoundHandler)
  // Before every route: the OpenAPI document is collected as routes are added.
  await app.register(openAPIPlugin, { version: pkg.version })
  addRequestLog(app, config.LOG_PROMPTS)
  refuseNewWorkWhileDraining(app)
  await app.register(metricsPlugin, { prefixLabelLimit: config.PREFIX_LABEL_LIMIT, metricsPort: config.METRICS_PORT, host: config.HOST })
  await app.register(authPlugin, { apiKeys: config.API_KEYS, apiKeysFile: config.API_KEYS_FILE })
  await app.register(rateLimitPlugin, { perMinute: config.RATE_LIMIT_PER_MINUTE, redisUrl: config.REDIS_URL })
  await app.register(enginePlugin, { config, modelDir })
  await app.register(storePlugin)
  await app.register(healthRoutes)
  await app.register(tgiClientCompat)
  await app.register(generateRoutes)
  await app.register(prefixRoutes)
  await app.register(generateStreamRoutes)
  await app.register(tgiRootRoutes)
  await app.register(openAIPlugin, { prefix: '/v1', modelDir })
  return app
}
