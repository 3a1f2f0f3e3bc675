/**
 * Fastify's Ajv options for request bodies: strict input, so "7" is not 7,
 * null is not 0, and unknown fields are errors, never silently dropped.
 */
export const strictAjv = {
  customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false },
} as const
