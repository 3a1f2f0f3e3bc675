/**
 * The prefix store's rules as units: who may see and change a prefix
 * (prefix-access), what a tenant may store (tenant-quota, over a real
 * embedded index, across its page boundary), and how an upload becomes the
 * blob the store keeps (upload-conversion: every refusal before a byte is
 * written, PEFT and stored files of each kind, the model checks), and the
 * sorted id list the embedded index pages with (against a plain sorted array).
 */
import t from 'tap'
import fc from 'fast-check'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import type { Principal } from '../../src/auth/api-keys.js'
import { readModelSpec } from '../../src/engine/model-config.js'
import type { ServedModel } from '../../src/prefixes/adapter-kind.js'
import { readNativeFile } from '../../src/prefixes/adapter-files.js'
import { NATIVE_FILE } from '../../src/prefixes/native-format.js'
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE } from '../../src/prefixes/peft-adapter.js'
import { EmbeddedIndex } from '../../src/prefixes/store/embedded-index.js'
import { modelFingerprint } from '../../src/prefixes/store/model-fingerprint.js'
import { canModify, canSee, modifiableOrRefused, visibleOrMissing } from '../../src/prefixes/store/prefix-access.js'
import type { PrefixRecord, Visibility } from '../../src/prefixes/store/prefix-record.js'
import { SortedIds } from '../../src/prefixes/store/sorted-ids.js'
import { assertWithinQuota, usageOf } from '../../src/prefixes/store/tenant-quota.js'
import { parseUpload, toStoredBlob, type UploadedFile } from '../../src/prefixes/store/upload-conversion.js'
import { promptAdaptersDir } from '../helpers/prompt-adapters.js'
import { storiesModelDir, storiesPrefixesDir } from '../helpers/shared-data.js'

function record(id: string, owner: string, visibility: Visibility, bytes = 100): PrefixRecord {
  return {
    id,
    version: 1,
    sha256: createHash('sha256').update(id).digest('hex'),
    num_virtual_tokens: 8,
    dtype: 'F32',
    bytes,
    format: 'native',
    description: '',
    owner,
    visibility,
    source: 'upload',
    created_at: '2026-01-01T00:00:00.000Z',
    updated_at: '2026-01-01T00:00:00.000Z',
  }
}

t.test('access: own and public prefixes are seen, only own ones changed, the rest is missing', async (t) => {
  const admin: Principal = { tenant: 'ops', role: 'admin' }
  const alice: Principal = { tenant: 'alice', role: 'tenant' }
  const bob: Principal = { tenant: 'bob', role: 'tenant' }
  const alicePrivate = record('a-secret', 'alice', 'private')
  const alicePublic = record('a-shared', 'alice', 'public')

  t.same([canSee(alice, alicePrivate), canSee(bob, alicePrivate), canSee(admin, alicePrivate)], [true, false, true])
  t.same([canSee(alice, alicePublic), canSee(bob, alicePublic), canSee(admin, alicePublic)], [true, true, true])
  t.same([canModify(alice, alicePublic), canModify(bob, alicePublic), canModify(admin, alicePublic)], [true, false, true])
  t.same([canModify(alice, alicePrivate), canModify(bob, alicePrivate)], [true, false])

  t.equal(visibleOrMissing(bob, 'a-shared', alicePublic), alicePublic)
  // Another tenant's private prefix answers exactly as a missing one: its existence does not leak.
  const hidden = t.throws(() => visibleOrMissing(bob, 'a-secret', alicePrivate)) as Error
  const missing = t.throws(() => visibleOrMissing(bob, 'a-secret', null)) as Error
  t.match(hidden, { code: 'PREFIXD_PREFIX_NOT_FOUND', statusCode: 404 })
  t.same([hidden.message, (hidden as { code?: string }).code], [missing.message, (missing as { code?: string }).code], 'hidden and missing look alike')

  t.equal(modifiableOrRefused(alice, 'a-shared', alicePublic), alicePublic)
  t.equal(modifiableOrRefused(admin, 'a-secret', alicePrivate), alicePrivate)
  t.throws(() => modifiableOrRefused(bob, 'a-shared', alicePublic), { code: 'PREFIXD_FORBIDDEN', statusCode: 403, message: /may use it but not change it/ })
  t.throws(() => modifiableOrRefused(bob, 'a-secret', alicePrivate), { code: 'PREFIXD_PREFIX_NOT_FOUND' }, 'not even seen: 404, not 403')
  t.throws(() => modifiableOrRefused(alice, 'gone', null), { code: 'PREFIXD_PREFIX_NOT_FOUND' })
})

t.test('quota: counted over the whole index, a replacement counts once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'prefixd-quota-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const index = await EmbeddedIndex.open(dir)
  t.teardown(() => index.close())
  // Pages of 4 records: alice's on several pages, the last page full (so the walk asks once more).
  const pageSize = 4
  const ids = Array.from({ length: 12 }, (_, i) => `p-${String(i).padStart(2, '0')}`)
  const owner = (i: number) => (i % 3 === 0 || i === 11 ? 'alice' : 'bob')
  for (const [i, id] of ids.entries()) await index.commit(record(id, owner(i), 'private', 10 + i), Buffer.from(id), 'create')
  const aliceIds = ids.filter((_, i) => owner(i) === 'alice')
  const aliceBytes = ids.reduce((n, _, i) => n + (owner(i) === 'alice' ? 10 + i : 0), 0)

  const usage = await usageOf(index, 'alice', pageSize)
  t.equal(usage.prefixes, aliceIds.length, 'prefixes on every page are counted')
  t.same(await usageOf(index, 'alice'), usage, 'the same in one page of the default size')
  t.equal(usage.bytes, aliceBytes)
  t.same([...usage.byId.keys()].sort(), aliceIds)
  t.same(await usageOf(index, 'nobody', pageSize), { prefixes: 0, bytes: 0, byId: new Map() })

  const room = { maxPrefixes: aliceIds.length + 1, maxBytes: aliceBytes + 50 }
  await t.resolves(assertWithinQuota(index, 'alice', 'new-one', 50, room), 'one more prefix, exactly at both limits')
  await t.rejects(assertWithinQuota(index, 'alice', 'new-one', 51, room), { code: 'PREFIXD_QUOTA_EXCEEDED', statusCode: 413, message: /would store \d+ bytes.*TENANT_MAX_PREFIX_BYTES/ })
  const full = { maxPrefixes: aliceIds.length, maxBytes: Number.MAX_SAFE_INTEGER }
  await t.rejects(assertWithinQuota(index, 'alice', 'new-one', 1, full), { code: 'PREFIXD_QUOTA_EXCEEDED', message: /at most \d+ prefixes \(TENANT_MAX_PREFIXES\)/ })
  // Replacing one of her own prefixes adds no prefix and swaps its bytes.
  const last = aliceIds.at(-1)!
  const lastBytes = usage.byId.get(last)!
  await t.resolves(assertWithinQuota(index, 'alice', last, lastBytes + 50, { ...full, maxBytes: aliceBytes + 50 }))
  await t.rejects(assertWithinQuota(index, 'alice', last, lastBytes + 51, { ...full, maxBytes: aliceBytes + 50 }), { code: 'PREFIXD_QUOTA_EXCEEDED' })
})

t.test('uploads: refused before anything is stored, or turned into the stored blob', async (t) => {
  const spec = await readModelSpec(storiesModelDir)
  const model: ServedModel = { spec, accepts: new Set(['past_kv', 'input_embeds']) }
  const folder = (dir: string): UploadedFile[] =>
    [PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE].map((filename) => ({ filename, data: readFileSync(join(dir, filename)) }))
  const dogMax = folder(join(storiesPrefixesDir, 'dog-max'))
  const limit = 1 << 20
  const refused = (files: UploadedFile[], maxBytes = limit) => t.throws(() => parseUpload(files, maxBytes)) as { code?: string; message: string }

  t.match(refused([{ filename: 'adapter_model.bin', data: Buffer.from('x') }]), { code: 'PREFIXD_INVALID_PREFIX', message: /pickle files are not accepted/ })
  t.match(refused([{ filename: NATIVE_FILE, data: Buffer.from([0x80, 0x02, 0x7d, 0x71, 0, 0, 0, 0, 0, 0]) }]), { code: 'PREFIXD_INVALID_PREFIX', message: /pickle/ }, 'a pickle by its content, whatever its name')
  t.match(refused(dogMax, 100), { code: 'PREFIXD_PAYLOAD_TOO_LARGE', message: /over the limit of 100 bytes/ })
  t.match(refused([...dogMax, { filename: 'notes.txt', data: Buffer.from('hi') }]), { code: 'PREFIXD_INVALID_PREFIX', message: /unexpected file 'notes.txt'/ })
  t.match(refused([...dogMax, dogMax[0]]), { message: /uploaded twice/ })
  t.match(refused([]), { message: /no prefix files/ })
  t.match(refused([dogMax[1]]), { message: `'${PEFT_WEIGHTS_FILE}' is there but '${PEFT_CONFIG_FILE}' is missing` })
  t.match(refused([dogMax[0]]), { message: `'${PEFT_CONFIG_FILE}' is there but '${PEFT_WEIGHTS_FILE}' is missing` })

  const loaded = parseUpload([...dogMax, { filename: 'README.md', data: Buffer.from('# model card') }], limit)
  t.equal(loaded.kind, 'prefix', "PEFT's model card is accepted and ignored")
  t.equal(loaded.format, 'peft')
  const stored = toStoredBlob(loaded, model, 'dog-max')
  t.equal(stored.sha256, createHash('sha256').update(stored.blob).digest('hex'), 'content-addressed')
  t.match(stored, { kind: 'prefix', format: 'peft', shape: { num_virtual_tokens: 8, num_layers: spec.numLayers, num_kv_heads: spec.numKvHeads, head_dim: spec.headDim } })
  t.same(readNativeFile(stored.blob).modelFingerprint, modelFingerprint(spec), "the stored blob carries the model's fingerprint")

  // The stored file uploads as itself: same blob, same sha, format native.
  const again = toStoredBlob(parseUpload([{ filename: NATIVE_FILE, data: stored.blob }], limit), model, 'dog-max')
  t.same([again.sha256, again.format, again.kind], [stored.sha256, 'native', 'prefix'])
  t.match(refused([...dogMax, { filename: NATIVE_FILE, data: stored.blob }]), { message: /ambiguous upload/ })

  // Made for another model: a stored file by its fingerprint even where the shapes agree; any file by its shape.
  const storedFile = parseUpload([{ filename: NATIVE_FILE, data: stored.blob }], limit)
  const sameShape: ServedModel = { ...model, spec: { ...spec, vocabSize: spec.vocabSize + 1 } }
  t.throws(() => toStoredBlob(storedFile, sameShape, 'dog-max'), { code: 'PREFIXD_PREFIX_SHAPE_MISMATCH', message: /was made for another model/ })
  t.ok(toStoredBlob(loaded, sameShape, 'dog-max'), 'PEFT files carry no fingerprint: the shape alone decides')
  const otherShape: ServedModel = { ...model, spec: { ...spec, numLayers: spec.numLayers + 1 } }
  t.throws(() => toStoredBlob(loaded, otherShape, 'dog-max'), { code: 'PREFIXD_PREFIX_SHAPE_MISMATCH' })
  t.throws(() => toStoredBlob(loaded, { ...model, spec: { ...spec, maxPositions: 8 } }, 'dog-max'), /dog-max/, 'more virtual tokens than the model has positions')

  // A prompt-tuning adapter: its own kind and shape, and refused by a graph that takes no input embeddings.
  const luna = parseUpload(folder(join(promptAdaptersDir, 'pt-cat-luna')), limit)
  const lunaStored = toStoredBlob(luna, model, 'luna')
  t.match(lunaStored, { kind: 'prompt_tuning', shape: { hidden_size: spec.hiddenSize } })
  t.throws(() => toStoredBlob(luna, { spec, accepts: new Set(['past_kv']) }, 'luna'), { code: 'PREFIXD_PREFIX_SHAPE_MISMATCH' })
})

t.test('sorted ids: pages as a sorted array would, through any adds and deletes', async (t) => {
  const id = fc.stringMatching(/^[a-c0-9-]{0,3}$/)
  const op = fc.oneof(fc.record({ add: id }), fc.record({ remove: id }))
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), fc.option(id, { nil: null }), fc.integer({ min: 0, max: 8 }), (ops, after, limit) => {
        const ids = new SortedIds()
        const reference = new Set<string>()
        for (const o of ops) {
          if ('add' in o) {
            ids.add(o.add)
            reference.add(o.add)
          } else {
            ids.delete(o.remove)
            reference.delete(o.remove)
          }
        }
        // Code-unit order, as Redis orders ASCII ids.
        const sorted = [...reference].sort()
        const want = sorted.filter((x) => after === null || x > after).slice(0, limit)
        return ids.size === reference.size && JSON.stringify(ids.after(after, limit)) === JSON.stringify(want)
      }),
      { numRuns: 300 },
    ),
    '300 random histories page like the reference',
  )
})
