/**
 * GET /metrics (Prometheus text) and the wiring that feeds it: the engine
 * worker's stats become gauges, and every finished generation is observed
 * per prefix. Registered before the engine plugin so `app.metrics` exists
 * when the generation service is built.
 */
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { EngineStats } from '../engine/protocol.js'
import { PrefixdMetrics } from '../metrics/prefixd-metrics.js'
import type { RequestReport } from './generation-service.js'
import { serveMetricsOnOwnPort } from './metrics-listener.js'
import { probeRoute } from './probe-route.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: PrefixdMetrics
  }
}

/** Label value for requests without a prefix (parentheses: never a valid prefix id). */
export const BASE_MODEL_LABEL = '(base)'

export interface MetricsPluginOptions {
  prefixLabelLimit: number
  /** METRICS_PORT: 0 serves /metrics on the API port; another port, on a listener of its own (and not on the API port). */
  metricsPort?: number
  host?: string
}

export const metricsPlugin = fp<MetricsPluginOptions>(
  async (app, { prefixLabelLimit, metricsPort = 0, host = '0.0.0.0' }) => {
    const metrics = new PrefixdMetrics(prefixLabelLimit)
    app.decorate('metrics', metrics)
    if (metricsPort !== 0) {
      serveMetricsOnOwnPort(app, metrics, host, metricsPort)
    } else {
      app.decorate('metricsServer', null)
      app.get('/metrics', { config: probeRoute }, async (_request, reply) => {
        void reply.header('content-type', metrics.registry.contentType)
        return metrics.scrape()
      })
    }
    app.addHook('onReady', async () => {
      const update = (s: EngineStats) => {
        metrics.running.set(s.running)
        metrics.waiting.set(s.waiting)
        metrics.batchSize.set(s.batchSize)
      }
      app.engine.on('stats', update)
    })
  },
  { name: 'prefixd-metrics' },
)

const seconds = (from: number, to: number | undefined) => (to === undefined ? undefined : (to - from) / 1000)

/** One finished generation: its metrics, and its one log line. */
export function reportRequest(app: FastifyInstance, r: RequestReport): void {
  const t = r.timings
  const prefix = app.metrics.observeRequest({
    prefix: r.prefixIds.length > 0 ? r.prefixIds.join('+') : BASE_MODEL_LABEL,
    tenant: r.tenant,
    outcome: r.outcome,
    promptTokens: r.promptTokens,
    generatedTokens: r.generatedTokens,
    durationS: (t.finishedAt - t.arrivedAt) / 1000,
    queueS: seconds(t.arrivedAt, t.admittedAt),
    timeToFirstTokenS: seconds(t.arrivedAt, t.firstTokenAt),
  })
  const line = {
    tenant: r.tenant,
    prefixId: r.prefixIds,
    metricsLabel: prefix,
    outcome: r.outcome,
    finishReason: r.finishReason,
    promptTokens: r.promptTokens,
    generatedTokens: r.generatedTokens,
    queueMs: t.admittedAt === undefined ? undefined : Math.round(t.admittedAt - t.arrivedAt),
    timeToFirstTokenMs: t.firstTokenAt === undefined ? undefined : Math.round(t.firstTokenAt - t.arrivedAt),
    durationMs: Math.round(t.finishedAt - t.arrivedAt),
  }
  if (r.outcome === 'success' || r.outcome === 'cancelled') r.log.info(line, 'generation')
  else r.log.warn(line, 'generation failed')
  markLogged(r.log)
}

const LOGGED = Symbol('prefixd.requestLogged')

/** The request's one log line was written (by its generation report). */
export function markLogged(log: object): void {
  ;(log as { [LOGGED]?: boolean })[LOGGED] = true
}

export function wasLogged(log: object): boolean {
  return (log as { [LOGGED]?: boolean })[LOGGED] === true
}
