/**
 * Per-tenant request rate limits (@fastify/rate-limit), counted in Redis when
 * it is configured so that the limit holds across replicas. Runs after
 * authentication (preHandler), keyed by tenant; probes are never limited.
 * If Redis is unreachable the limit is skipped rather than failing requests.
 */
import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import { Redis } from 'ioredis'
import { RateLimitedError } from '../errors.js'
import { isProbe } from './probe-route.js'

export const rateLimitPlugin = fp<{ perMinute: number; redisUrl: string }>(
  async (app, { perMinute, redisUrl }) => {
    if (perMinute <= 0) return
    const redis = redisUrl
      ? new Redis(redisUrl, { connectTimeout: 1000, maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false })
      : undefined
    redis?.on('error', () => {}) // reconnects by itself; the store plugin reports Redis health
    if (redis) app.addHook('onClose', async () => void redis.disconnect())
    await app.register(rateLimit, {
      global: true,
      hook: 'preHandler',
      max: perMinute,
      timeWindow: 60_000,
      keyGenerator: (request) => request.principal?.tenant ?? request.ip,
      allowList: isProbe,
      redis,
      nameSpace: 'prefixd:ratelimit:',
      skipOnError: true,
      errorResponseBuilder: (_request, context) =>
        new RateLimitedError(`rate limit of ${context.max} requests per minute exceeded; retry in ${context.after}`),
    })
  },
  { name: 'prefixd-rate-limit', dependencies: ['prefixd-auth'] },
)
