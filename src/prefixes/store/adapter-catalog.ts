/**
 * The catalog of adapters over the index: create (POST), replace (PUT),
 * remove, get, list and download, each with the caller's access rights and,
 * for writes, the tenant's quota. An upload is parsed and validated as its
 * kind end to end before the index or the disk sees a byte. Every kind goes
 * through the same path; nothing here knows one kind from another.
 */
import type { Principal } from '../../auth/api-keys.js'
import { PrefixExistsError, PrefixNotFoundError } from '../../errors.js'
import type { ServedModel } from '../adapter-kind.js'
import { isValidPrefixId } from '../../domain/prefix-id.js'
import type { EngineResidency } from './engine-residency.js'
import { newRecord } from './folder-seed.js'
import { canSee, modifiableOrRefused, visibleOrMissing } from './prefix-access.js'
import type { PrefixIndex, PrefixRecord, Visibility } from './prefix-record.js'
import { assertWithinQuota, type TenantQuota } from './tenant-quota.js'
import { parseUpload, toStoredBlob, type UploadedFile } from './upload-conversion.js'

export interface Upload {
  files: UploadedFile[]
  description?: string
  /** Default: private for a new adapter, unchanged for a replacement. */
  visibility?: Visibility
}

export interface CatalogOptions {
  index: PrefixIndex
  model: ServedModel
  quota: TenantQuota
  maxFileBytes: number
}

/** The record as callers see it: records written before kinds existed are prefixes. */
export type DescribedRecord = PrefixRecord & Required<Pick<PrefixRecord, 'kind'>>

function described(record: PrefixRecord): DescribedRecord {
  return { ...record, kind: record.kind ?? 'prefix' }
}

export class AdapterCatalog {
  constructor(
    private readonly opts: CatalogOptions,
    private readonly residency: EngineResidency,
    /** Called after every successful write of the id (the store forgets why a folder was refused). */
    private readonly onWritten: (id: string) => void,
  ) {}

  /** POST: a new id, owned by the caller. */
  create(id: string, upload: Upload, principal: Principal): Promise<DescribedRecord> {
    return this.write(id, upload, principal, null)
  }

  /**
   * PUT: a new version of an existing id. A missing id is 404 (not created),
   * so that another tenant's private adapter answers exactly like a missing one.
   */
  async replace(id: string, upload: Upload, principal: Principal): Promise<DescribedRecord> {
    const existing = modifiableOrRefused(principal, id, await this.lookup(id))
    return this.write(id, upload, principal, existing)
  }

  async remove(id: string, principal: Principal): Promise<void> {
    modifiableOrRefused(principal, id, await this.lookup(id))
    const removed = await this.opts.index.remove(id)
    if (removed === null) throw new PrefixNotFoundError(id)
    this.residency.invalidate(id)
  }

  async get(id: string, principal: Principal): Promise<DescribedRecord> {
    return described(visibleOrMissing(principal, id, await this.lookup(id)))
  }

  /**
   * A page of the records the caller may see, ordered by id, and the cursor
   * of the next page (null on the last). Pages of others' private adapters
   * are skipped over, so a page is full unless it is the last.
   */
  async list(cursor: string | null, limit: number, principal: Principal): Promise<{ records: DescribedRecord[]; nextCursor: string | null }> {
    const records: DescribedRecord[] = []
    let after = cursor
    for (;;) {
      const page = await this.opts.index.list(after, limit + 1)
      for (const r of page) if (canSee(principal, r)) records.push(described(r))
      if (records.length > limit) return { records: records.slice(0, limit), nextCursor: records[limit - 1].id }
      if (page.length <= limit) return { records, nextCursor: null }
      after = page[page.length - 1].id
    }
  }

  /** The stored native file of the id's current version. */
  async download(id: string, principal: Principal): Promise<{ record: DescribedRecord; blob: Buffer }> {
    const record = await this.get(id, principal)
    const blob = await this.opts.index.readBlob(record.sha256)
    if (blob === null) throw new PrefixNotFoundError(id)
    return { record, blob }
  }

  private lookup(id: string): Promise<PrefixRecord | null> {
    return isValidPrefixId(id) ? this.opts.index.get(id) : Promise.resolve(null)
  }

  private async write(id: string, upload: Upload, principal: Principal, existing: PrefixRecord | null): Promise<DescribedRecord> {
    if (!isValidPrefixId(id)) throw new PrefixNotFoundError(id)
    // Everything is validated before the index or the disk sees a byte.
    const loaded = parseUpload(upload.files, this.opts.maxFileBytes)
    const stored = toStoredBlob(loaded, this.opts.model, id)
    // A replacement keeps its owner (an admin replacing a tenant's adapter does not take it).
    const owner = existing?.owner ?? principal.tenant
    if (principal.role !== 'admin') await assertWithinQuota(this.opts.index, owner, id, stored.blob.length, this.opts.quota)
    const record = newRecord(id, stored, {
      description: upload.description ?? existing?.description ?? '',
      source: 'upload',
      owner,
      visibility: upload.visibility ?? existing?.visibility ?? 'private',
    })
    // A replacement holds only over the version it read: a DELETE or another
    // PUT that landed meanwhile wins, atomically, in either index.
    const outcome =
      existing === null
        ? await this.opts.index.commit(record, stored.blob, 'create')
        : await this.opts.index.commit(record, stored.blob, 'replace', undefined, existing.version)
    if (outcome.status === 'exists') {
      throw new PrefixExistsError(`prefix '${id}' exists (version ${outcome.record.version}); replace it with PUT /prefixes/${id}`)
    }
    if (outcome.status === 'conflict') {
      if (outcome.record === null) throw new PrefixNotFoundError(id)
      throw new PrefixExistsError(`prefix '${id}' was replaced meanwhile (now version ${outcome.record.version}); read it and retry the PUT`)
    }
    if (outcome.status !== 'written') throw new Error(`unexpected commit outcome ${outcome.status}`)
    this.onWritten(id)
    this.residency.admitWritten(outcome.record, loaded.contribution)
    return described(outcome.record)
  }
}
