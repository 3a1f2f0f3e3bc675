/**
 * Every adapter kind prefixd serves, in one table. A new kind is one entry
 * here (and its own file beside this one); the store, API, CLI, quotas,
 * metrics and tenants need no change to serve it.
 */
import { InvalidPrefixError } from '../errors.js'
import type { AdapterKind, AdapterKindName } from './adapter-kind.js'
import { prefixKind } from './prefix-kind.js'
import { promptTuningKind, pTuningKind } from './prompt-kinds.js'

export const ADAPTER_KINDS: readonly AdapterKind[] = [prefixKind, promptTuningKind, pTuningKind]

/** The kind a record names; records from before kinds existed are prefixes. */
export function kindNamed(name: AdapterKindName | undefined): AdapterKind {
  const kind = ADAPTER_KINDS.find((k) => k.name === (name ?? 'prefix'))
  if (kind === undefined) throw new Error(`unknown adapter kind '${name}'`)
  return kind
}

/** The kind that reads adapters of this PEFT type (case-insensitive, as PEFT's enum); refuses the others by name. */
export function kindForPeftType(peftType: unknown): AdapterKind {
  const served = listed(ADAPTER_KINDS.map((k) => k.peftType))
  if (typeof peftType !== 'string') throw new InvalidPrefixError(`adapter_config.json has no "peft_type"; expected ${served}`)
  const kind = ADAPTER_KINDS.find((k) => k.peftType === peftType.toUpperCase())
  if (kind === undefined) throw new InvalidPrefixError(`the adapter is peft_type "${peftType}"; only ${served} adapters are accepted`)
  return kind
}

/** "a", "a or b", "a, b or c" */
function listed(names: readonly string[]): string {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`
}

/** The kind whose stored file has this `format` metadata. */
export function kindForNativeFormat(format: string | undefined): AdapterKind {
  const kind = ADAPTER_KINDS.find((k) => k.nativeFormat === format)
  if (kind === undefined) {
    const known = listed(ADAPTER_KINDS.map((k) => `"${k.nativeFormat}"`))
    throw new InvalidPrefixError(`invalid prefixd adapter file: "__metadata__" "format" is ${JSON.stringify(format ?? null)}, expected ${known}`)
  }
  return kind
}
