/**
 * What a killed process leaves in the store folder: `*.tmp` files of writes
 * it never renamed, and blobs it wrote whose record it never committed (or
 * whose record was removed while their deletion was cut short). Swept at
 * start-up and then periodically; whatever goes is logged.
 *
 * A file younger than the grace period may be a write in progress (a blob is
 * written before its record is committed), so it is left for the next sweep.
 */
import { readdir, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { PrefixIndex } from './prefix-record.js'

export interface SweepResult {
  tmpFiles: string[]
  orphanBlobs: string[]
}

const BLOB_FILE = /^([0-9a-f]{64})\.safetensors$/

async function olderThan(path: string, cutoff: number): Promise<boolean> {
  try {
    return (await stat(path)).mtimeMs <= cutoff
  } catch {
    return false // gone already
  }
}

async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir)
  } catch {
    return []
  }
}

/**
 * Removes `*.tmp` files in `storeDir` and its `blobs/` and `index/` folders,
 * and blobs in `blobs/` that no id references, when older than `graceMs`.
 */
export async function sweepStore(storeDir: string, referenced: ReadonlySet<string>, graceMs: number, now = Date.now()): Promise<SweepResult> {
  const cutoff = now - graceMs
  const result: SweepResult = { tmpFiles: [], orphanBlobs: [] }
  for (const dir of [storeDir, join(storeDir, 'blobs'), join(storeDir, 'index')]) {
    for (const name of await entries(dir)) {
      const path = join(dir, name)
      const blob = dir.endsWith('blobs') ? BLOB_FILE.exec(name) : null
      const isTmp = name.endsWith('.tmp')
      const isOrphan = blob !== null && !referenced.has(blob[1])
      if (!(isTmp || isOrphan) || !(await olderThan(path, cutoff))) continue
      await unlink(path).catch(() => undefined)
      if (isTmp) result.tmpFiles.push(join(dir.slice(storeDir.length + 1), name))
      else result.orphanBlobs.push(name)
    }
  }
  return result
}

/** One sweep against the index's references; what went is logged at warn, a failure too (the next sweep retries). */
export async function sweepAndLog(
  storeDir: string,
  index: Pick<PrefixIndex, 'referencedBlobs'>,
  graceMs: number,
  log: { warn(obj: object, msg: string): void },
): Promise<SweepResult | null> {
  try {
    const result = await sweepStore(storeDir, await index.referencedBlobs(), graceMs)
    if (result.tmpFiles.length + result.orphanBlobs.length > 0) {
      log.warn(
        { tmpFiles: result.tmpFiles, orphanBlobs: result.orphanBlobs },
        'prefix store: removed what interrupted writes left (temporary files, blobs no prefix points at)',
      )
    }
    return result
  } catch (err) {
    log.warn({ problem: (err as Error).message }, 'prefix store: sweep failed; will retry')
    return null
  }
}
