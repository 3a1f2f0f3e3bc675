/**
 * Prefixes as they lie in the store folder: `<PREFIX_DIR>/<id>/` holds a PEFT
 * adapter or a native prefix file. A prefix is read, validated against the
 * model and sent to the engine the first time a request names it, and read
 * again when its files change, so prefixes dropped into the folder work
 * without a restart.
 */
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { PrefixNotFoundError } from '../errors.js'
import type { ModelSpec } from '../engine/model-spec.js'
import type { PrefixKV } from './prefix-kv.js'
import { isValidPrefixId, loadPrefixFolder } from './prefix-folder.js'
import { assertPrefixFitsModel } from './shape-check.js'

export interface PrefixSink {
  putPrefix(key: string, prefix: PrefixKV): void
  dropPrefix(key: string): void
}

export interface ResolvedPrefix {
  id: string
  /** The engine's key for this exact version of the prefix. */
  key: string
  numVirtualTokens: number
}

interface Entry extends ResolvedPrefix {
  stamp: string
}

export class FolderPrefixCatalog {
  private readonly entries = new Map<string, Entry>()
  private readonly loading = new Map<string, Promise<Entry>>()
  private version = 0

  constructor(
    private readonly dir: string,
    private readonly spec: ModelSpec,
    private readonly sink: PrefixSink,
    private readonly maxFileBytes: number,
  ) {}

  async resolve(id: string): Promise<ResolvedPrefix> {
    // Ids are checked before they get anywhere near a path.
    if (!isValidPrefixId(id)) throw new PrefixNotFoundError(id)
    const stamp = await this.stampOf(id)
    const cached = this.entries.get(id)
    if (cached && cached.stamp === stamp) return cached
    let pending = this.loading.get(id)
    if (!pending) {
      pending = this.load(id, stamp).finally(() => this.loading.delete(id))
      this.loading.set(id, pending)
    }
    return pending
  }

  private async load(id: string, stamp: string): Promise<Entry> {
    const { prefix } = await loadPrefixFolder(join(this.dir, id), { maxFileBytes: this.maxFileBytes })
    assertPrefixFitsModel(prefix, this.spec, id)
    const entry: Entry = { id, key: `${id}#${++this.version}`, numVirtualTokens: prefix.numVirtualTokens, stamp }
    this.sink.putPrefix(entry.key, prefix)
    const previous = this.entries.get(id)
    this.entries.set(id, entry)
    // Requests already running keep their own copy of the old version in the
    // engine until they finish; new ones get the new key.
    if (previous) this.sink.dropPrefix(previous.key)
    return entry
  }

  /** Names, sizes and modification times of the folder's files: changes when they do. */
  private async stampOf(id: string): Promise<string> {
    const folder = join(this.dir, id)
    try {
      const names = (await readdir(folder)).sort()
      const parts = await Promise.all(
        names.map(async (n) => {
          const s = await stat(join(folder, n))
          return `${n}:${s.size}:${s.mtimeMs}`
        }),
      )
      return parts.join('|')
    } catch {
      throw new PrefixNotFoundError(id)
    }
  }
}
