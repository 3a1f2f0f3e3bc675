/**
 * Probe routes (/health, /ready, /metrics, /info) are marked where they are
 * declared, with the route option `config: { probe: true }`, and every plugin
 * that treats them differently reads the mark: they need no key (auth), are
 * never rate limited, and keep answering while the server drains, so that
 * orchestrators and scrapers see what happens.
 */
import type { FastifyRequest } from 'fastify'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A probe or scrape: open, unlimited, answered while draining. */
    probe?: boolean
  }
}

/** The route option of a probe route. */
export const probeRoute = { probe: true } as const

export function isProbe(request: FastifyRequest): boolean {
  return request.routeOptions.config?.probe === true
}
