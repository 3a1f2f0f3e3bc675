/**
 * Who may do what with a prefix. A tenant sees its own prefixes and public
 * ones; it changes only its own. An admin sees and changes everything. A
 * prefix the caller may not see is answered exactly as a missing one, so its
 * existence does not leak.
 */
import type { Principal } from '../../auth/api-keys.js'
import { ForbiddenError, PrefixNotFoundError } from '../../errors.js'
import type { PrefixRecord } from './prefix-record.js'

export function canSee(principal: Principal, record: PrefixRecord): boolean {
  return principal.role === 'admin' || record.visibility === 'public' || record.owner === principal.tenant
}

export function canModify(principal: Principal, record: PrefixRecord): boolean {
  return principal.role === 'admin' || record.owner === principal.tenant
}

/** The record if the caller may see it; otherwise "not found", as if it did not exist. */
export function visibleOrMissing(principal: Principal, id: string, record: PrefixRecord | null): PrefixRecord {
  if (record === null || !canSee(principal, record)) throw new PrefixNotFoundError(id)
  return record
}

/** The record if the caller may change it: 404 if it may not even see it, 403 if it only may use it. */
export function modifiableOrRefused(principal: Principal, id: string, record: PrefixRecord | null): PrefixRecord {
  const visible = visibleOrMissing(principal, id, record)
  if (!canModify(principal, visible)) {
    throw new ForbiddenError(`prefix '${id}' belongs to another tenant; it is public, so you may use it but not change it`)
  }
  return visible
}
