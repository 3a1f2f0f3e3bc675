/**
 * What a SIGKILL during writes leaves in the store folder (temporary files,
 * blobs no record points at) is removed at start-up and logged; the blobs of
 * real prefixes stay. Periodic sweeps leave young files alone (a write may be
 * in progress) and take them once they are old.
 */
import t from 'tap'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../src/config/load-config.js'
import { sha256Hex } from '../../src/prefixes/store/blob-files.js'
import { openPrefixStore } from '../../src/prefixes/store/open-store.js'
import { sweepStore } from '../../src/prefixes/store/store-sweep.js'
import { startApp } from '../helpers/app.js'
import { buildPeftAdapter } from '../helpers/prefix-fixtures.js'
import { upload } from '../helpers/prefix-upload.js'
import { generatedModel } from '../helpers/tiny-model.js'

const prefixDir = mkdtempSync(join(tmpdir(), 'prefixd-sweep-'))
t.teardown(() => rmSync(prefixDir, { recursive: true, force: true }))
const store = join(prefixDir, '.store')

t.test('start-up removes temporary files and orphan blobs, keeps real ones, and logs it', async (t) => {
  const app = await startApp(t, await generatedModel('llama'), { PREFIX_DIR: prefixDir })
  const spec = app.engine.spec
  const a = buildPeftAdapter({ layers: spec.numLayers, kvHeads: spec.numKvHeads, headDim: spec.headDim, P: 2 })
  t.equal((await upload(app, 'POST', '/prefixes', { 'adapter_config.json': a.configJson, 'adapter_model.safetensors': a.safetensors }, { id: 'keep' })).status, 201)
  const kept = readdirSync(join(store, 'blobs'))
  t.equal(kept.length, 1)
  await app.close()

  // What a killed writer leaves: a half-written blob, index entry and seeded list, and a blob never committed.
  const orphan = Buffer.from('a blob whose record was never committed')
  const planted = [
    join('blobs', `${sha256Hex(orphan)}.safetensors`),
    join('blobs', `${'0'.repeat(64)}.safetensors.4242.deadbeef.tmp`),
    join('index', 'half.json.4242.deadbeef.tmp'),
    'seeded.json.4242.deadbeef.tmp',
  ]
  writeFileSync(join(store, planted[0]), orphan)
  for (const p of planted.slice(1)) writeFileSync(join(store, p), 'partial')

  const warnings: Array<{ obj: object; msg: string }> = []
  const log = { warn: (obj: object, msg: string) => warnings.push({ obj, msg }), info: () => {}, debug: () => {}, error: () => {} }
  const sink = { putAdapter: () => {}, dropAdapter: () => {} }
  const reopened = await openPrefixStore(loadConfig({}, { PREFIX_DIR: prefixDir }), { spec, accepts: app.engine.accepts }, sink, log)
  t.teardown(() => reopened.close())
  for (const p of planted) t.notOk(existsSync(join(store, p)), `${p} removed`)
  t.same(readdirSync(join(store, 'blobs')), kept, "the real prefix's blob stays")
  t.ok(existsSync(join(store, 'index', 'keep.json')), 'and its record')
  const logged = warnings.find((w) => /interrupted writes/.test(w.msg))
  t.ok(logged, 'logged')
  const obj = logged?.obj as { tmpFiles: string[]; orphanBlobs: string[] } | undefined
  t.same(obj?.tmpFiles.sort(), planted.slice(1).sort(), 'naming every temporary file')
  t.same(obj?.orphanBlobs, [`${sha256Hex(orphan)}.safetensors`], 'and the orphan blob')
})

t.test('a periodic sweep leaves young files for later', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'prefixd-sweep-young-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const blobs = join(dir, 'blobs')
  mkdirSync(blobs)
  const sha = 'a'.repeat(64)
  writeFileSync(join(blobs, `${sha}.safetensors`), 'x')
  writeFileSync(join(dir, 'seeded.json.1.ab.tmp'), 'x')
  const young = await sweepStore(dir, new Set(), 60_000)
  t.same(young, { tmpFiles: [], orphanBlobs: [] }, 'nothing younger than the grace period goes')
  const referenced = await sweepStore(dir, new Set([sha]), 0, Date.now() + 61_000)
  t.same(referenced, { tmpFiles: ['seeded.json.1.ab.tmp'], orphanBlobs: [] }, 'a referenced blob stays, however old')
  const old = await sweepStore(dir, new Set(), 60_000, Date.now() + 61_000)
  t.same(old, { tmpFiles: [], orphanBlobs: [`${sha}.safetensors`] }, 'an old unreferenced blob goes')
})
