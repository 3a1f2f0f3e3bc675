/**
 * What the index holds about one adapter id (a prefix or any other kind): the
 * version it points to (a content-addressed blob, by sha256), its kind and
 * shape, and who owns it. The same JSON travels through Redis, the embedded
 * index files and the HTTP API.
 */
import type { AdapterKindName, AdapterShapeFields } from '../adapter-kind.js'

/** A stored adapter: its id and version, its shape fields (each kind fills its own), and where it came from. */
export interface PrefixRecord extends AdapterShapeFields {
  id: string
  /** 1 for the first upload, one more for each replacement of the id. */
  version: number
  /** sha256 (hex) of the stored native blob: the version's identity. */
  sha256: string
  /** The adapter kind; absent in records written before kinds existed, which are prefixes. */
  kind?: AdapterKindName
  /** The dtype the uploaded values came in; the stored blob is always F32. */
  dtype: string
  /** Size of the stored blob. */
  bytes: number
  /** The uploaded format; both are stored as the native file. */
  format: 'peft' | 'native'
  description: string
  /** The tenant that uploaded it (folder imports: DEFAULT_OWNER). */
  owner: string
  /** private: its owner (and admins) only; public: every tenant may generate with it. */
  visibility: Visibility
  /** 'folder': registered from PREFIX_DIR at start-up; 'upload': through the API (an upload wins over a folder). */
  source: 'upload' | 'folder'
  created_at: string
  updated_at: string
}

export type Visibility = 'public' | 'private'

export const DEFAULT_OWNER = 'anonymous'

/** What resolving an id gives the generation service (the shape GenerationService's PrefixResolver expects). */
export interface ResolvedPrefix {
  id: string
  /** The engine's key for this exact version: its sha256. */
  key: string
  /** Positions it takes ahead of the request's own tokens. */
  numVirtualTokens: number
}

/**
 * create: the id must be new; upsert: create or replace; seed: a folder import;
 * replace: only over the version given (see PrefixIndex.commit), so that a
 * PUT racing a DELETE (or another PUT) never brings back or overwrites what
 * it did not see.
 */
export type CommitMode = 'create' | 'upsert' | 'seed' | 'replace'

export type CommitOutcome =
  | { status: 'written'; record: PrefixRecord; previous: PrefixRecord | null }
  | { status: 'exists'; record: PrefixRecord }
  /** seed only: the folder was imported before with this exact content, or an upload owns the id. */
  | { status: 'unchanged' }
  /** replace only: the id is gone (record null) or holds another version than the one replaced. */
  | { status: 'conflict'; record: PrefixRecord | null }

/** The index of prefixes and their blobs; the embedded and the Redis implementations pass one contract suite. */
export interface PrefixIndex {
  readonly kind: 'embedded' | 'redis'
  /** Whether the index answers right now (readiness). */
  reachable(): boolean
  get(id: string): Promise<PrefixRecord | null>
  /** Records for these ids, null where absent, in the same order. */
  getMany(ids: string[]): Promise<Array<PrefixRecord | null>>
  /** Up to `limit` records with ids after `after` (exclusive), ordered by id. */
  list(after: string | null, limit: number): Promise<PrefixRecord[]>
  count(): Promise<number>
  /**
   * Makes `blob` durable, then points the record's id at it in one atomic step.
   * `record.version` and `created_at` are assigned here (replacing keeps created_at).
   * `seedSha` (seed mode) identifies the folder content that was imported.
   * `replacing` (replace mode) is the version the caller read: the commit
   * happens only if the id still holds it, checked in the same atomic step.
   */
  commit(record: PrefixRecord, blob: Buffer, mode: CommitMode, seedSha?: string, replacing?: number): Promise<CommitOutcome>
  /** Removes the id; returns the removed record, or null if there was none. */
  remove(id: string): Promise<PrefixRecord | null>
  /** The blob's bytes, verified against its sha256, or null when no copy exists. */
  readBlob(sha256: string): Promise<Buffer | null>
  /**
   * False when the index lost its data since it was opened or last checked
   * (Redis came back empty, or was flushed): a marker key written at open is
   * gone. The marker is then written again, so a loss is reported once.
   */
  checkIntact(): Promise<boolean>
  /** The sha256 of every blob some id points at (the start-up and periodic sweep keep only these). */
  referencedBlobs(): Promise<Set<string>>
  /** A counter that changes whenever any record changes (for the safety re-check). */
  epoch(): Promise<number>
  /** `changed(id)` on every change, from this replica or another; `resync()` when notices may have been missed. */
  watch(listener: { changed(id: string): void; resync(): void }): void
  close(): Promise<void>
}
