/**
 * The prefix store as an app decorator: opened once the engine is up (it
 * needs the model's shape and the worker to send prefixes to), closed with the
 * app. The generation service resolves prefix ids through it.
 */
import fp from 'fastify-plugin'
import { openPrefixStore } from '../prefixes/store/open-store.js'
import type { PrefixStore } from '../prefixes/store/prefix-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    prefixStore: PrefixStore
  }
}

export const storePlugin = fp(
  async (app) => {
    const log = app.log.child({ component: 'prefix-store' })
    const store = await openPrefixStore(app.config, { spec: app.engine.spec, accepts: app.engine.accepts }, app.engine, log)
    app.decorate('prefixStore', store)
    const { metrics } = app
    store.onCacheEvent = (event) => {
      if (event === 'hit') metrics.cacheHits.inc()
      else if (event === 'miss') metrics.cacheMisses.inc()
      else metrics.cacheEvictions.inc()
    }
    // The cache gauges are read when Prometheus scrapes, not kept up to date.
    metrics.onScrape(() => {
      const stats = store.cacheStats()
      metrics.cachedPrefixes.set(stats.prefixes)
      metrics.cacheBytes.set(stats.bytes)
    })
    app.readiness.report('prefix index', () => store.notReadyReason())
    store.onDataLoss = () => metrics.indexDataLosses.inc()
    app.log.info({ index: store.kind }, 'prefix store open')
    app.addHook('onClose', async () => store.close())
  },
  { name: 'prefixd-store', dependencies: ['prefixd-engine', 'prefixd-metrics'] },
)
