/**
 * The shared index in Redis: records, the sorted id set, and a copy of every
 * blob, so any replica can serve any prefix without a shared disk. Writes are
 * Lua scripts (atomic) issued after the blob is durable on local disk; each
 * one publishes the id on a channel every replica subscribes to.
 *
 * Connections fail fast instead of queueing: with the offline queue off, one
 * retry per command and a command timeout, a request made while Redis is away
 * gets a 503 store_unavailable at once, and ioredis keeps reconnecting in the
 * background so the server recovers without a restart.
 */
import { randomUUID } from 'node:crypto'
import { Redis, ReplyError, type RedisOptions } from 'ioredis'
import { StoreUnavailableError } from '../../errors.js'
import { BlobFiles, sha256Hex } from './blob-files.js'
import type { CommitMode, CommitOutcome, PrefixIndex, PrefixRecord } from './prefix-record.js'
import { COMMIT_SCRIPT, REMOVE_SCRIPT } from './redis-scripts.js'

type Listener = Parameters<PrefixIndex['watch']>[0]

interface ScriptCommands {
  prefixdCommit(...args: Array<string | Buffer>): Promise<string[]>
  prefixdRemove(...args: Array<string | Buffer>): Promise<string | null>
}

export interface RedisIndexOptions {
  url: string
  /** Local copies of the blobs (a cache of Redis's copy). */
  blobDir: string
  /** Longest wait for one command, in ms. */
  timeoutMs: number
  keyPrefix?: string
  /** Logs connection trouble (never on the request path). */
  onConnectionError?: (err: Error) => void
}

function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no connection within ${ms} ms`)), ms)
  })
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer))
}

function unavailable(err: unknown): never {
  if (err instanceof StoreUnavailableError) throw err
  throw new StoreUnavailableError(`the prefix store (Redis) is unavailable: ${(err as Error).message}`)
}

export class RedisIndex implements PrefixIndex {
  readonly kind = 'redis' as const

  /**
   * ioredis reports 'ready' once connected and until the connection drops; a
   * stalled Redis (process stopped) keeps the connection, so the last command
   * timing out counts as unreachable too, until one succeeds again.
   */
  reachable(): boolean {
    return this.client.status === 'ready' && !this.stalled
  }
  private readonly keys: string[]
  private readonly blobPrefix: string
  private readonly channel: string
  private readonly markerKey: string
  private readonly listeners: Listener[] = []

  private constructor(
    private readonly client: Redis & ScriptCommands,
    private readonly subscriber: Redis,
    private readonly blobs: BlobFiles,
    prefix: string,
  ) {
    this.keys = ['index', 'ids', 'refs', 'seeded', 'epoch'].map((k) => prefix + k)
    this.blobPrefix = `${prefix}blob:`
    this.channel = `${prefix}changes`
    this.markerKey = `${prefix}marker`
  }

  static async open(opts: RedisIndexOptions): Promise<RedisIndex> {
    const options: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: opts.timeoutMs,
      connectTimeout: opts.timeoutMs,
      // Keep trying forever, at most every half second, so recovery is quick.
      retryStrategy: (times) => Math.min(50 * times, 500),
    }
    const client = new Redis(opts.url, options) as Redis & ScriptCommands
    const subscriber = new Redis(opts.url, { ...options, commandTimeout: undefined })
    const report = opts.onConnectionError ?? (() => undefined)
    client.on('error', report)
    subscriber.on('error', report)
    client.defineCommand('prefixdCommit', { numberOfKeys: 5, lua: COMMIT_SCRIPT })
    client.defineCommand('prefixdRemove', { numberOfKeys: 5, lua: REMOVE_SCRIPT })
    const index = new RedisIndex(client, subscriber, await BlobFiles.open(opts.blobDir), opts.keyPrefix ?? 'prefixd:')
    try {
      // ioredis retries a refused first connection forever; a start-up gives up after a few command timeouts.
      await withDeadline(
        (async () => {
          await client.connect()
          await subscriber.connect()
          await subscriber.subscribe(index.channel)
        })(),
        3 * opts.timeoutMs,
      )
    } catch (err) {
      client.disconnect()
      subscriber.disconnect()
      throw new StoreUnavailableError(`cannot reach Redis at REDIS_URL: ${(err as Error).message}`)
    }
    // Present from now on for as long as Redis keeps its data: its absence is a data loss.
    await index.armMarker()
    subscriber.on('message', (_channel: string, id: string) => {
      for (const l of index.listeners) l.changed(id)
    })
    // After any reconnect, notices sent while we were away are lost: re-check everything.
    const resync = () => {
      for (const l of index.listeners) l.resync()
    }
    client.on('ready', resync)
    subscriber.on('ready', resync)
    return index
  }

  private stalled = false
  /** The marker this replica last saw (see checkIntact). */
  private marker: string | null = null

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const result = await fn()
      this.stalled = false
      return result
    } catch (err) {
      // Redis answered with an error: it is there. Anything else (a timeout, a closed connection) is not.
      if (!(err instanceof ReplyError)) this.stalled = true
      unavailable(err)
    }
  }

  /** Writes the marker unless one is there, and remembers the one that is. */
  private async armMarker(): Promise<void> {
    await this.call(() => this.client.set(this.markerKey, randomUUID(), 'NX'))
    this.marker = await this.call(() => this.client.get(this.markerKey))
  }

  async checkIntact(): Promise<boolean> {
    const now = await this.call(() => this.client.get(this.markerKey))
    if (now !== null && now === this.marker) return true
    await this.armMarker()
    return false
  }

  async get(id: string): Promise<PrefixRecord | null> {
    const text = await this.call(() => this.client.hget(this.keys[0], id))
    return text === null ? null : (JSON.parse(text) as PrefixRecord)
  }

  async getMany(ids: string[]): Promise<Array<PrefixRecord | null>> {
    if (ids.length === 0) return []
    const texts = await this.call(() => this.client.hmget(this.keys[0], ...ids))
    return texts.map((t) => (t === null ? null : (JSON.parse(t) as PrefixRecord)))
  }

  async list(after: string | null, limit: number): Promise<PrefixRecord[]> {
    const ids = await this.call(() => this.client.zrangebylex(this.keys[1], after === null ? '-' : `(${after}`, '+', 'LIMIT', 0, limit))
    const records = await this.getMany(ids)
    // An id removed between the two reads is simply left out.
    return records.filter((r): r is PrefixRecord => r !== null)
  }

  async count(): Promise<number> {
    return this.call(() => this.client.zcard(this.keys[1]))
  }

  async referencedBlobs(): Promise<Set<string>> {
    return new Set(await this.call(() => this.client.hkeys(this.keys[2])))
  }

  async epoch(): Promise<number> {
    const text = await this.call(() => this.client.get(this.keys[4]))
    return text === null ? 0 : Number(text)
  }

  async commit(record: PrefixRecord, blob: Buffer, mode: CommitMode, seedSha = '', replacing?: number): Promise<CommitOutcome> {
    if (mode === 'create') {
      // Refuse a taken id before moving the blob anywhere.
      const existing = await this.get(record.id)
      if (existing) return { status: 'exists', record: existing }
    }
    const { created } = await this.blobs.write(record.sha256, blob)
    let reply: string[]
    try {
      reply = await this.call(() =>
        this.client.prefixdCommit(...this.keys, record.id, JSON.stringify(record), mode, blob, this.blobPrefix, this.channel, seedSha, '', String(replacing ?? '')),
      )
    } catch (err) {
      if (created) await this.blobs.remove(record.sha256)
      throw err
    }
    const [status, text, previousText] = reply
    if (status === 'written') {
      const previous = previousText ? (JSON.parse(previousText) as PrefixRecord) : null
      if (previous && previous.sha256 !== record.sha256) await this.forgetLocalCopy(previous.sha256)
      return { status, record: JSON.parse(text) as PrefixRecord, previous }
    }
    if (created) await this.blobs.remove(record.sha256)
    if (status === 'exists') return { status, record: JSON.parse(text) as PrefixRecord }
    if (status === 'conflict') return { status, record: text ? (JSON.parse(text) as PrefixRecord) : null }
    return { status: 'unchanged' }
  }

  async remove(id: string): Promise<PrefixRecord | null> {
    const text = await this.call(() => this.client.prefixdRemove(...this.keys, id, '', '', '', this.blobPrefix, this.channel))
    if (text === null) return null
    const previous = JSON.parse(text) as PrefixRecord
    await this.forgetLocalCopy(previous.sha256)
    return previous
  }

  /** Drops this replica's local copy of a blob Redis no longer keeps (no id points at it). */
  private async forgetLocalCopy(sha256: string): Promise<void> {
    const stillUsed = await this.client.exists(this.blobPrefix + sha256).catch(() => 1)
    if (stillUsed === 0) await this.blobs.remove(sha256)
  }

  async readBlob(sha256: string): Promise<Buffer | null> {
    const local = await this.blobs.read(sha256)
    if (local !== null) return local
    const shared = await this.call(() => this.client.getBuffer(this.blobPrefix + sha256))
    if (shared === null || sha256Hex(shared) !== sha256) return null
    await this.blobs.write(sha256, shared)
    return shared
  }

  watch(listener: Listener): void {
    this.listeners.push(listener)
  }

  async close(): Promise<void> {
    this.subscriber.disconnect()
    await this.client.quit().catch(() => this.client.disconnect())
  }
}
