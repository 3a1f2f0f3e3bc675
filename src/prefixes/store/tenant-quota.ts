/**
 * Per-tenant storage limits: how many prefixes a tenant owns and how many
 * bytes they take. Counted by walking the index (a page of 1,000 at a time)
 * when a tenant uploads, which is rare next to generation.
 */
import { QuotaExceededError } from '../../errors.js'
import type { PrefixIndex } from './prefix-record.js'

export interface TenantQuota {
  maxPrefixes: number
  maxBytes: number
}

/** `pageSize`: records read per call of the index (a test walks several pages with a small one). */
export async function usageOf(index: PrefixIndex, tenant: string, pageSize = 1000): Promise<{ prefixes: number; bytes: number; byId: Map<string, number> }> {
  const byId = new Map<string, number>()
  let bytes = 0
  let after: string | null = null
  for (;;) {
    const page = await index.list(after, pageSize)
    for (const r of page) {
      if (r.owner !== tenant) continue
      byId.set(r.id, r.bytes)
      bytes += r.bytes
    }
    if (page.length < pageSize) break
    after = page[page.length - 1].id
  }
  return { prefixes: byId.size, bytes, byId }
}

/** Refuses a write of `bytes` to `id` that would take the tenant over its limits. */
export async function assertWithinQuota(index: PrefixIndex, tenant: string, id: string, bytes: number, quota: TenantQuota): Promise<void> {
  const usage = await usageOf(index, tenant)
  const replacing = usage.byId.get(id)
  const prefixes = usage.prefixes + (replacing === undefined ? 1 : 0)
  const total = usage.bytes - (replacing ?? 0) + bytes
  if (prefixes > quota.maxPrefixes) {
    throw new QuotaExceededError(`tenant '${tenant}' may store at most ${quota.maxPrefixes} prefixes (TENANT_MAX_PREFIXES); delete one first`)
  }
  if (total > quota.maxBytes) {
    throw new QuotaExceededError(`tenant '${tenant}' would store ${total} bytes of prefixes; the limit is ${quota.maxBytes} (TENANT_MAX_PREFIX_BYTES)`)
  }
}
