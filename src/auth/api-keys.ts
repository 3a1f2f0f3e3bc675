/**
 * API keys: each maps to a tenant and a role. Only sha256 hashes of keys are
 * configured or kept in memory, so a leaked config file or heap dump does not
 * leak usable keys. A key is `pfx_` + 32 random bytes (base64url): hashing
 * without a salt is safe at that entropy.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { ConfigError } from '../errors.js'

export type Role = 'admin' | 'tenant'

export interface Principal {
  tenant: string
  role: Role
}

export interface KeyEntry extends Principal {
  /** Hex sha256 of the key. */
  sha256: string
}

/** Tenants name Redis keys and metric labels: a safe character set. */
export const TENANT = /^[A-Za-z0-9._-]{1,64}$/
const SHA256 = /^[0-9a-f]{64}$/

export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex')
}

export function newKey(): string {
  return `pfx_${randomBytes(32).toString('base64url')}`
}

function checkEntry(e: unknown, where: string): KeyEntry {
  const x = e as Partial<KeyEntry> | null
  if (x === null || typeof x !== 'object') throw new ConfigError(`${where}: not an object`)
  if (typeof x.tenant !== 'string' || !TENANT.test(x.tenant)) throw new ConfigError(`${where}: tenant must match ${TENANT.source}`)
  if (x.role !== 'admin' && x.role !== 'tenant') throw new ConfigError(`${where}: role must be admin or tenant`)
  if (typeof x.sha256 !== 'string' || !SHA256.test(x.sha256)) throw new ConfigError(`${where}: sha256 must be 64 lowercase hex digits`)
  return { tenant: x.tenant, role: x.role, sha256: x.sha256 }
}

/** API_KEYS: comma-separated `tenant:role:sha256` entries. */
export function parseKeyList(text: string): KeyEntry[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s, i) => {
      const [tenant, role, sha256, ...rest] = s.split(':')
      if (rest.length > 0) throw new ConfigError(`API_KEYS entry ${i + 1}: expected tenant:role:sha256`)
      return checkEntry({ tenant, role, sha256 }, `API_KEYS entry ${i + 1}`)
    })
}

/** API_KEYS_FILE: a JSON array of {tenant, role, sha256}. */
export function readKeyFile(path: string): KeyEntry[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    throw new ConfigError(`API_KEYS_FILE ${path}: ${(err as Error).message}`)
  }
  if (!Array.isArray(parsed)) throw new ConfigError(`API_KEYS_FILE ${path}: expected a JSON array of {tenant, role, sha256}`)
  return parsed.map((e, i) => checkEntry(e, `API_KEYS_FILE ${path} entry ${i + 1}`))
}

export class KeyRing {
  private readonly byHash = new Map<string, Principal>()

  constructor(entries: readonly KeyEntry[]) {
    for (const e of entries) this.byHash.set(e.sha256, { tenant: e.tenant, role: e.role })
  }

  get size(): number {
    return this.byHash.size
  }

  /** The principal a presented key stands for, or null. */
  identify(key: string): Principal | null {
    return this.byHash.get(hashKey(key)) ?? null
  }
}

export function loadKeyRing(config: { API_KEYS: string; API_KEYS_FILE: string }): KeyRing {
  const entries = [...parseKeyList(config.API_KEYS), ...(config.API_KEYS_FILE ? readKeyFile(config.API_KEYS_FILE) : [])]
  return new KeyRing(entries)
}
