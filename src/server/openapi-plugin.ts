/**
 * The OpenAPI 3 document, built by @fastify/swagger from the route schemas
 * (so it cannot drift from what the server validates), served as JSON at
 * GET /openapi.json and browsable at /docs. Registered before every route:
 * @fastify/swagger records routes as they are added.
 */
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'

export interface OpenAPIPluginOptions {
  version: string
}

export const openAPIPlugin = fp<OpenAPIPluginOptions>(
  async (app, { version }) => {
    await app.register(swagger, {
      openapi: {
        // 3.1: JSON Schema 2020-12, as the route schemas are (numeric exclusiveMinimum, type null).
        openapi: '3.1.0',
        info: {
          title: 'prefixd',
          version,
          description:
            'One frozen decoder language model serving many prefix-tuning adapters. TGI-style routes ' +
            '(/generate, /generate_stream) answer errors as {error, error_type}; the OpenAI-compatible ' +
            'routes (/v1/...) as {"error": {message, type, param, code}}. See docs/api.md.',
        },
        tags: [
          { name: 'OpenAI', description: 'OpenAI-compatible API: `model` is the base model or a prefix id.' },
        ],
        components: {
          securitySchemes: {
            bearerAuth: {
              type: 'http',
              scheme: 'bearer',
              description: 'An API key (prefixd keys new), where the server is configured with keys. /health, /ready, /info, /metrics and these docs need none.',
            },
          },
        },
        // Lets the /docs page send a key with every try-out request.
        security: [{ bearerAuth: [] }],
      },
    })
    await app.register(swaggerUi, { routePrefix: '/docs' })
    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  },
  { name: 'prefixd-openapi' },
)
