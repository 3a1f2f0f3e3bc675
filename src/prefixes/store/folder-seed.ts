/**
 * Prefixes placed in PREFIX_DIR before start (one sub-folder per id holding a
 * PEFT adapter or a native file, as the folder catalog read them) are
 * registered in the index at start-up under the folder's name. A folder is
 * imported again only when its content changes, and never over a prefix that
 * was uploaded through the API; invalid folders are skipped with a warning
 * that names the problem, and their error is kept so that a request naming
 * the id learns what is wrong instead of a bare 404.
 */
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { ServedModel } from '../adapter-kind.js'
import { isValidPrefixId, PREFIX_ID_RULE } from '../../domain/prefix-id.js'
import { loadPrefixFolder } from '../prefix-folder.js'
import { DEFAULT_OWNER, type PrefixIndex, type PrefixRecord } from './prefix-record.js'
import { toStoredBlob, type StoredBlob } from './upload-conversion.js'

export interface SeedLogger {
  warn(obj: object, msg: string): void
  info(obj: object, msg: string): void
}

export interface SeedResult {
  imported: string[]
  /** id → why its folder was refused. */
  skipped: Map<string, Error>
}

export function newRecord(
  id: string,
  stored: StoredBlob,
  fields: { description: string; source: PrefixRecord['source']; owner?: string; visibility?: PrefixRecord['visibility'] },
): PrefixRecord {
  const now = new Date().toISOString()
  return {
    id,
    version: 1,
    sha256: stored.sha256,
    kind: stored.kind,
    ...stored.shape,
    dtype: stored.dtype,
    bytes: stored.blob.length,
    format: stored.format,
    description: fields.description,
    // Folder imports are the operator's: public, changed by admins only.
    owner: fields.owner ?? DEFAULT_OWNER,
    visibility: fields.visibility ?? 'public',
    source: fields.source,
    created_at: now,
    updated_at: now,
  }
}

async function isFolder(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory() // follows links: a linked adapter folder counts
  } catch {
    return false
  }
}

export async function seedFromFolder(
  dir: string,
  ctx: { model: ServedModel; index: PrefixIndex; maxFileBytes: number; log: SeedLogger },
): Promise<SeedResult> {
  const result: SeedResult = { imported: [], skipped: new Map() }
  let names: string[]
  try {
    names = (await readdir(dir)).sort()
  } catch {
    return result
  }
  for (const name of names) {
    // Dot-folders are the store's own (.store) or hidden: never prefixes.
    if (name.startsWith('.') || !(await isFolder(join(dir, name)))) continue
    if (!isValidPrefixId(name)) {
      ctx.log.warn({ folder: name }, `skipped prefix folder: its name is not a valid prefix id (${PREFIX_ID_RULE})`)
      continue
    }
    let stored: StoredBlob
    try {
      stored = toStoredBlob(await loadPrefixFolder(join(dir, name), { maxFileBytes: ctx.maxFileBytes }), ctx.model, name)
    } catch (err) {
      result.skipped.set(name, err as Error)
      ctx.log.warn({ prefixId: name, problem: (err as Error).message }, `skipped prefix folder '${name}': ${(err as Error).message}`)
      continue
    }
    const outcome = await ctx.index.commit(newRecord(name, stored, { description: '', source: 'folder' }), stored.blob, 'seed', stored.sha256)
    if (outcome.status === 'written') result.imported.push(name)
  }
  if (result.imported.length > 0) ctx.log.info({ prefixIds: result.imported }, 'registered prefix folders')
  return result
}
