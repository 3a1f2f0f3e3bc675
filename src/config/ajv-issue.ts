/**
 * The part of an Ajv validation error prefixd reads, for both Ajv instances it
 * meets: env-schema's (configuration) and Fastify's (request bodies).
 */
export interface AjvIssue {
  instancePath: string
  keyword: string
  message?: string
  params?: Record<string, unknown>
}
