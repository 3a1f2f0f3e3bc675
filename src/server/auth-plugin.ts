/**
 * Who is calling: `Authorization: Bearer <key>` → tenant and role. A wrong or
 * missing key is 401. Probes, metrics and the API documentation stay open so
 * orchestrators and scrapers need no key. With no keys configured the server
 * runs open (everyone is an admin) and says so loudly at start-up.
 */
import fp from 'fastify-plugin'
import { UnauthorizedError } from '../errors.js'
import { loadKeyRing, type Principal } from '../auth/api-keys.js'
import { isProbe } from './probe-route.js'

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal
  }
}

const OPEN_PREFIXES = ['/docs', '/openapi']
const OPEN_MODE: Principal = { tenant: 'anonymous', role: 'admin' }

export const authPlugin = fp<{ apiKeys: string; apiKeysFile: string }>(
  async (app, opts) => {
    const ring = loadKeyRing({ API_KEYS: opts.apiKeys, API_KEYS_FILE: opts.apiKeysFile })
    app.decorateRequest('principal', null as unknown as Principal)
    if (ring.size === 0) {
      app.log.warn('NO API KEYS ARE CONFIGURED: the server is open, every caller is an admin. Set API_KEYS or API_KEYS_FILE.')
      app.addHook('onRequest', async (request) => {
        request.principal = OPEN_MODE
      })
      return
    }
    app.log.info({ keys: ring.size }, 'API keys loaded')
    app.addHook('onRequest', async (request) => {
      const url = request.routeOptions.url ?? request.url
      if (isProbe(request) || OPEN_PREFIXES.some((p) => url.startsWith(p))) return
      const header = request.headers.authorization
      const match = typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header) : null
      const principal = match ? ring.identify(match[1]) : null
      if (!principal) {
        throw new UnauthorizedError(match ? 'the API key is not valid' : 'an API key is required: Authorization: Bearer <key>')
      }
      request.principal = principal
    })
  },
  { name: 'prefixd-auth' },
)
