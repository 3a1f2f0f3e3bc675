/**
 * The single-node index, used when REDIS_URL is empty (the first-start
 * default): one small JSON file per id under `<store>/index/`, each replaced
 * atomically, and the blobs under `<store>/blobs/`. All records are held in
 * memory too (a few hundred bytes each), so listing never touches the disk.
 * Mutations are serialized; changes are announced in-process only.
 */
import { readdir, readFile, unlink } from 'node:fs/promises'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { isValidPrefixId } from '../../domain/prefix-id.js'
import { BlobFiles, fsyncDir, writeFileAtomic } from './blob-files.js'
import type { CommitMode, CommitOutcome, PrefixIndex, PrefixRecord } from './prefix-record.js'
import { SortedIds } from './sorted-ids.js'

type Listener = Parameters<PrefixIndex['watch']>[0]

export class EmbeddedIndex implements PrefixIndex {
  readonly kind = 'embedded' as const

  /** A local folder: reachable while the process lives. */
  reachable(): boolean {
    return true
  }
  private readonly records = new Map<string, PrefixRecord>()
  private readonly ids = new SortedIds()
  private seeded: Record<string, string> = {}
  private readonly listeners: Listener[] = []
  private changes = 0
  private queue: Promise<unknown> = Promise.resolve()

  private constructor(
    private readonly storeDir: string,
    private readonly blobs: BlobFiles,
  ) {}

  static async open(storeDir: string): Promise<EmbeddedIndex> {
    const index = new EmbeddedIndex(storeDir, await BlobFiles.open(join(storeDir, 'blobs')))
    await mkdir(index.indexDir, { recursive: true })
    for (const name of await readdir(index.indexDir)) {
      const id = name.endsWith('.json') ? name.slice(0, -5) : ''
      if (!isValidPrefixId(id)) continue // temporary files of an interrupted write
      const record = JSON.parse(await readFile(join(index.indexDir, name), 'utf8')) as PrefixRecord
      index.records.set(id, record)
      index.ids.add(id)
    }
    try {
      index.seeded = JSON.parse(await readFile(index.seededFile, 'utf8')) as Record<string, string>
    } catch {
      index.seeded = {}
    }
    return index
  }

  private get indexDir(): string {
    return join(this.storeDir, 'index')
  }

  private get seededFile(): string {
    return join(this.storeDir, 'seeded.json')
  }

  /** Runs mutations one at a time, so read-check-write sequences are atomic. */
  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => undefined)
    return run
  }

  async get(id: string): Promise<PrefixRecord | null> {
    return this.records.get(id) ?? null
  }

  async getMany(ids: string[]): Promise<Array<PrefixRecord | null>> {
    return ids.map((id) => this.records.get(id) ?? null)
  }

  async list(after: string | null, limit: number): Promise<PrefixRecord[]> {
    return this.ids.after(after, limit).map((id) => this.records.get(id)!)
  }

  async count(): Promise<number> {
    return this.records.size
  }

  async epoch(): Promise<number> {
    return this.changes
  }

  /** Its own files: they cannot vanish behind its back the way a Redis restart empties Redis. */
  async checkIntact(): Promise<boolean> {
    return true
  }

  referencedBlobs(): Promise<Set<string>> {
    // Serialized: a commit in progress has written its blob and will record it.
    return this.serialize(async () => new Set([...this.records.values()].map((r) => r.sha256)))
  }

  commit(record: PrefixRecord, blob: Buffer, mode: CommitMode, seedSha?: string, replacing?: number): Promise<CommitOutcome> {
    return this.serialize(async () => {
      const previous = this.records.get(record.id) ?? null
      if (mode === 'create' && previous) return { status: 'exists', record: previous }
      if (mode === 'replace' && previous?.version !== replacing) return { status: 'conflict', record: previous }
      if (mode === 'seed') {
        if (this.seeded[record.id] === seedSha || previous?.source === 'upload') return { status: 'unchanged' }
      }
      await this.blobs.write(record.sha256, blob)
      const next: PrefixRecord = {
        ...record,
        version: previous ? previous.version + 1 : 1,
        created_at: previous ? previous.created_at : record.created_at,
      }
      await writeFileAtomic(join(this.indexDir, `${record.id}.json`), this.indexDir, JSON.stringify(next))
      if (mode === 'seed' && seedSha !== undefined) {
        this.seeded[record.id] = seedSha
        await writeFileAtomic(this.seededFile, this.storeDir, JSON.stringify(this.seeded))
      }
      this.records.set(record.id, next)
      this.ids.add(record.id)
      if (previous) await this.releaseBlob(previous.sha256)
      this.announce(record.id)
      return { status: 'written', record: next, previous }
    })
  }

  remove(id: string): Promise<PrefixRecord | null> {
    return this.serialize(async () => {
      const previous = this.records.get(id)
      if (!previous) return null
      await unlink(join(this.indexDir, `${id}.json`))
      await fsyncDir(this.indexDir)
      this.records.delete(id)
      this.ids.delete(id)
      await this.releaseBlob(previous.sha256)
      this.announce(id)
      return previous
    })
  }

  async readBlob(sha256: string): Promise<Buffer | null> {
    return this.blobs.read(sha256)
  }

  /** Deletes a blob no record points to any more (requests in flight hold their own copy in memory). */
  private async releaseBlob(sha256: string): Promise<void> {
    for (const r of this.records.values()) if (r.sha256 === sha256) return
    await this.blobs.remove(sha256)
  }

  private announce(id: string): void {
    this.changes++
    for (const l of this.listeners) l.changed(id)
  }

  watch(listener: Listener): void {
    this.listeners.push(listener)
  }

  async close(): Promise<void> {
    await this.queue
  }
}
