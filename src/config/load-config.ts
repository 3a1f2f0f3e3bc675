import envSchema from 'env-schema'
import { ConfigError } from '../errors.js'
import type { AjvIssue } from './ajv-issue.js'
import { ConfigSchema, type Config } from './schema.js'

/**
 * Reads and validates the configuration from an environment (process.env by
 * default). A bad value stops the start with a message naming the variable.
 * Only variables the schema knows are read; overrides win over the environment.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const data: Record<string, unknown> = {}
  for (const key of Object.keys(ConfigSchema.properties)) {
    if (env[key] !== undefined) data[key] = env[key]
  }
  Object.assign(data, overrides)
  try {
    return envSchema<Config>({ schema: ConfigSchema, data, dotenv: false })
  } catch (err) {
    throw new ConfigError(`invalid configuration: ${describeAjvErrors(err)}`)
  }
}

/** The configuration table for the README: variable, default, description. */
export function configMarkdown(): string {
  const rows = Object.entries(ConfigSchema.properties).map(([name, s]) => {
    const schema = s as { default?: unknown; description?: string }
    return `| \`${name}\` | \`${JSON.stringify(schema.default)}\` | ${schema.description ?? ''} |`
  })
  return ['| variable | default | what |', '|---|---|---|', ...rows].join('\n')
}

/** "PORT must be integer; EXECUTION_PROVIDER must be one of cpu, cuda". */
function describeAjvErrors(err: unknown): string {
  const issues = (err as { errors?: AjvIssue[] }).errors
  if (!Array.isArray(issues)) return (err as Error).message
  return issues
    .map((i) => {
      const name = i.instancePath.replace(/^\//, '')
      const allowed = i.params?.allowedValues as unknown[] | undefined
      return allowed ? `${name} must be one of ${allowed.join(', ')}` : `${name} ${i.message ?? 'is invalid'}`
    })
    .join('; ')
}
