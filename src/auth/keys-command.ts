/**
 * `prefixd keys new --tenant T [--role tenant|admin]`: makes a fresh API key.
 * Prints the key once (to give to the client) and the entry to configure
 * (only its hash): nothing that could use the key is ever stored.
 */
import { parseArgs } from 'node:util'
import { hashKey, newKey, TENANT } from './api-keys.js'

export const KEYS_USAGE = `Usage: prefixd keys new --tenant NAME [--role tenant|admin]

Prints a new API key and the matching entry for API_KEYS_FILE (a JSON array)
or API_KEYS (tenant:role:sha256). The key itself is shown once and never stored.
`

export function runKeys(
  argv: string[],
  out: (s: string) => void = (s) => void process.stdout.write(s),
  err: (s: string) => void = (s) => void process.stderr.write(s),
): number {
  let values: { tenant?: string; role?: string; help?: boolean }
  let positionals: string[]
  try {
    ;({ values, positionals } = parseArgs({
      args: argv,
      options: { tenant: { type: 'string' }, role: { type: 'string', default: 'tenant' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
    }))
  } catch (e) {
    err(`prefixd keys: ${(e as Error).message}\n\n${KEYS_USAGE}`)
    return 2
  }
  if (values.help) {
    out(KEYS_USAGE)
    return 0
  }
  if (positionals[0] !== 'new' || !values.tenant || !TENANT.test(values.tenant)) {
    err(`prefixd keys: give 'new' and a --tenant of 1-64 letters, digits, . _ -\n\n${KEYS_USAGE}`)
    return 2
  }
  if (values.role !== 'tenant' && values.role !== 'admin') {
    err(`prefixd keys: --role must be tenant or admin\n`)
    return 2
  }
  const key = newKey()
  const sha256 = hashKey(key)
  out(`key:           ${key}\n`)
  out(`API_KEYS_FILE: ${JSON.stringify({ tenant: values.tenant, role: values.role, sha256 })}\n`)
  out(`API_KEYS:      ${values.tenant}:${values.role}:${sha256}\n`)
  return 0
}
