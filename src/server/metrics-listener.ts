/**
 * /metrics on a port of its own (METRICS_PORT), as TGI can: the labels name
 * prefix ids and tenants, so operators keep this port off the public Service
 * and let only Prometheus reach it. It listens when the app listens and
 * closes with the app; it answers GET /metrics and nothing else.
 */
import { createServer, type Server } from 'node:http'
import type { FastifyInstance } from 'fastify'
import type { PrefixdMetrics } from '../metrics/prefixd-metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The separate /metrics listener; null when /metrics is served on the API port. */
    metricsServer: Server | null
  }
}

function answer(res: import('node:http').ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' })
  res.end(JSON.stringify(body))
}

export function serveMetricsOnOwnPort(app: FastifyInstance, metrics: PrefixdMetrics, host: string, port: number): void {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path !== '/metrics') return answer(res, 404, { error: `no route ${req.method} ${path} on the metrics port`, error_type: 'not_found' })
    if (req.method !== 'GET' && req.method !== 'HEAD') return answer(res, 405, { error: 'GET /metrics only', error_type: 'validation' })
    metrics.scrape().then(
      (text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType })
        res.end(req.method === 'HEAD' ? undefined : text)
      },
      (err: unknown) => {
        app.log.error({ err }, 'metrics scrape failed')
        answer(res, 500, { error: 'internal server error', error_type: 'internal' })
      },
    )
  })
  // Scrapes are short: a stalled client is dropped instead of holding a socket.
  server.headersTimeout = 10_000
  server.requestTimeout = 10_000
  app.decorate('metricsServer', server)
  app.addHook('onListen', async () => {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    app.log.info({ port }, '/metrics served on its own port')
  })
  app.addHook('onClose', async () => {
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()))
  })
}
