/**
 * The /prefixes API on the real stories260K model (embedded index): upload a
 * PEFT adapter and generate PEFT's own tokens through it, replace, download,
 * list, delete, folder seeding, and every malformed upload refused with a 4xx
 * that says what is wrong, leaving nothing behind.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startApp, type GenerateReply } from '../helpers/app.js'
import {
  buildNativeFile, buildPeftAdapter, corruptNativeFiles, corruptPeftAdapters, corruptSafetensors, PICKLE_BYTES, TORCH_ZIP_BYTES,
} from '../helpers/prefix-fixtures.js'
import { peftFolderFiles, upload } from '../helpers/prefix-upload.js'
import { readExpected, storiesModelDir, storiesPrefixesDir } from '../helpers/shared-data.js'

const dogDir = join(storiesPrefixesDir, 'dog-max')
const robotDir = join(storiesPrefixesDir, 'robot-benny')
const stories = { layers: 5, kvHeads: 4, headDim: 8 }

const prefixDir = mkdtempSync(join(tmpdir(), 'prefixd-api-'))
t.teardown(() => rmSync(prefixDir, { recursive: true, force: true }))
symlinkSync(dogDir, join(prefixDir, 'seeded-dog'))
mkdirSync(join(prefixDir, 'broken'))
writeFileSync(join(prefixDir, 'broken', 'prefix.safetensors'), buildNativeFile({ layers: 3, kvHeads: 2, headDim: 16, P: 4 }).file)
mkdirSync(join(prefixDir, 'bad name!'))

const MAX_FILE = 32 * 1024
const app = await startApp(t, storiesModelDir, { PREFIX_DIR: prefixDir, MAX_PREFIX_FILE_BYTES: MAX_FILE })
const blobDir = join(prefixDir, '.store', 'blobs')

async function generateIds(prefixId: string, prompt: string, n: number) {
  const res = await app.inject({ method: 'POST', url: '/generate', payload: { inputs: prompt, parameters: { prefix_id: prefixId, max_new_tokens: n, details: true } } })
  const body = res.json() as GenerateReply & { error_type?: string; error?: string }
  return { status: res.statusCode, ids: body.details?.tokens.map((x) => x.id), body }
}

t.test('upload a PEFT adapter, generate exactly what PEFT generates', async (t) => {
  const r = await upload(app, 'POST', '/prefixes', peftFolderFiles(dogDir), { id: 'dog', description: 'a dog named Max' })
  t.equal(r.status, 201, JSON.stringify(r.body))
  t.match(r.body, {
    id: 'dog', version: 1, num_virtual_tokens: 8, num_layers: 5, num_kv_heads: 4, head_dim: 8, dtype: 'F32',
    format: 'peft', description: 'a dog named Max', owner: 'anonymous', visibility: 'private', source: 'upload',
  })
  t.match(r.body.sha256, /^[0-9a-f]{64}$/)
  t.equal(r.body.created_at, r.body.updated_at)
  const expected = readExpected(join(dogDir, 'expected.json'))
  for (const c of expected.cases) {
    const g = await generateIds('dog', c.prompt, c.generated_ids.length)
    t.same(g.ids, c.generated_ids, c.prompt)
  }
  const dup = await upload(app, 'POST', '/prefixes', peftFolderFiles(robotDir), { id: 'dog' })
  t.equal(dup.status, 409)
  t.equal(dup.body.error_type, 'conflict')
  t.match(dup.body.error, /PUT \/prefixes\/dog/)
})

t.test('download returns the native file; it re-uploads to the same version', async (t) => {
  const meta = (await app.inject({ method: 'GET', url: '/prefixes/dog' })).json()
  const res = await app.inject({ method: 'GET', url: '/prefixes/dog/download' })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'application/octet-stream')
  t.equal(res.headers['content-disposition'], 'attachment; filename="dog.safetensors"')
  t.equal(res.headers.etag, `"${meta.sha256}"`)
  t.equal(createHash('sha256').update(res.rawPayload).digest('hex'), meta.sha256)
  t.equal(res.rawPayload.length, meta.bytes)
  const again = await app.inject({ method: 'GET', url: '/prefixes/dog/download', headers: { 'if-none-match': `"${meta.sha256}"` } })
  t.equal(again.statusCode, 304)
  const native = await upload(app, 'POST', '/prefixes', { 'prefix.safetensors': res.rawPayload }, { id: 'dog-native' })
  t.equal(native.status, 201)
  t.equal(native.body.format, 'native')
  t.equal(native.body.sha256, meta.sha256, 'the same content is the same blob')
  const c = readExpected(join(dogDir, 'expected.json')).cases[0]
  t.same((await generateIds('dog-native', c.prompt, c.generated_ids.length)).ids, c.generated_ids)
})

t.test('PUT replaces: a new version, served at once; DELETE removes', async (t) => {
  const r = await upload(app, 'PUT', '/prefixes/dog', peftFolderFiles(robotDir), { description: 'now a robot' })
  t.equal(r.status, 200)
  t.equal(r.body.version, 2)
  t.equal(r.body.num_virtual_tokens, 16)
  t.not(r.body.created_at, undefined)
  const robot = readExpected(join(robotDir, 'expected.json')).cases[0]
  t.same((await generateIds('dog', robot.prompt, robot.generated_ids.length)).ids, robot.generated_ids, 'the new version')
  const missing = await upload(app, 'PUT', '/prefixes/robot', peftFolderFiles(robotDir))
  t.equal(missing.status, 404, 'PUT replaces; it does not create (POST does)')
  t.equal((await upload(app, 'POST', '/prefixes', peftFolderFiles(robotDir), { id: 'robot', visibility: 'public' })).body.visibility, 'public')
  const mismatch = await upload(app, 'PUT', '/prefixes/robot', peftFolderFiles(robotDir), { id: 'other' })
  t.equal(mismatch.status, 422)

  t.equal((await app.inject({ method: 'DELETE', url: '/prefixes/robot' })).statusCode, 204)
  t.equal((await app.inject({ method: 'DELETE', url: '/prefixes/robot' })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: '/prefixes/robot' })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: '/prefixes/robot/download' })).statusCode, 404)
  const gone = await generateIds('robot', 'x', 2)
  t.equal(gone.status, 404)
  t.equal(gone.body.error_type, 'not_found')
})

t.test('folders present at start are registered; broken ones say why', async (t) => {
  const seeded = (await app.inject({ method: 'GET', url: '/prefixes/seeded-dog' })).json()
  t.match(seeded, { id: 'seeded-dog', source: 'folder', format: 'peft', version: 1 })
  const c = readExpected(join(dogDir, 'expected.json')).cases[1]
  t.same((await generateIds('seeded-dog', c.prompt, c.generated_ids.length)).ids, c.generated_ids)
  const broken = await generateIds('broken', 'x', 2)
  t.equal(broken.status, 422)
  t.equal(broken.body.error_type, 'prefix_mismatch')
  t.match(broken.body.error, /3 layers, the model has 5/)
  t.equal((await app.inject({ method: 'GET', url: '/prefixes/broken' })).statusCode, 404)
})

t.test('list: pages by id with a cursor; strict query', async (t) => {
  const ids: string[] = []
  let cursor: string | null = null
  for (let i = 0; i < 10; i++) {
    const url: string = `/prefixes?limit=2${cursor ? `&cursor=${cursor}` : ''}`
    const page = (await app.inject({ method: 'GET', url })).json() as { prefixes: Array<{ id: string }>; next_cursor: string | null }
    t.ok(page.prefixes.length <= 2)
    ids.push(...page.prefixes.map((p) => p.id))
    cursor = page.next_cursor
    if (cursor === null) break
  }
  t.same(ids, ['dog', 'dog-native', 'seeded-dog'])
  for (const q of ['limit=0', 'limit=abc', 'limit=1001', 'cursor=..', 'page=2']) {
    const res = await app.inject({ method: 'GET', url: `/prefixes?${q}` })
    t.equal(res.statusCode, 422, q)
    t.equal(res.json().error_type, 'validation', q)
  }
})

t.test('every malformed upload is a 4xx naming the problem, and leaves nothing behind', async (t) => {
  const blobsBefore = readdirSync(blobDir).sort()
  const good = buildPeftAdapter({ ...stories, P: 4 })
  const cases: Array<[string, Record<string, Buffer | string>, Record<string, string>, number, string, RegExp]> = []
  for (const c of corruptSafetensors()) cases.push([`native: ${c.name}`, { 'prefix.safetensors': c.bytes }, { id: 'bad' }, 422, 'invalid_prefix', c.message])
  for (const c of corruptNativeFiles()) cases.push([`native: ${c.name}`, { 'prefix.safetensors': c.bytes }, { id: 'bad' }, 422, 'invalid_prefix', c.message])
  for (const c of corruptPeftAdapters()) {
    cases.push([`peft: ${c.name}`, { 'adapter_config.json': c.configJson, 'adapter_model.safetensors': c.safetensors }, { id: 'bad' }, 422, 'invalid_prefix', c.message])
  }
  cases.push(
    ['pickled .bin weights', { 'adapter_config.json': good.configJson, 'adapter_model.bin': PICKLE_BYTES }, { id: 'bad' }, 422, 'invalid_prefix', /pickle files are not accepted/],
    ['a .pt file', { 'prefix.pt': good.safetensors }, { id: 'bad' }, 422, 'invalid_prefix', /'prefix\.pt': pickle/],
    ['pickle bytes under a safe name', { 'prefix.safetensors': PICKLE_BYTES }, { id: 'bad' }, 422, 'invalid_prefix', /pickle/],
    ['torch zip under a safe name', { 'adapter_config.json': good.configJson, 'adapter_model.safetensors': TORCH_ZIP_BYTES }, { id: 'bad' }, 422, 'invalid_prefix', /pickle/],
    ['shape of another model', peftFiles(buildPeftAdapter({ layers: 2, kvHeads: 2, headDim: 4, P: 3 })), { id: 'bad' }, 422, 'prefix_mismatch', /2 layers, the model has 5/],
    ['another model, same shape', { 'prefix.safetensors': buildNativeFile({ ...stories, P: 2, metadata: { model_fingerprint: 'sha256:other' } }).file }, { id: 'bad' }, 422, 'prefix_mismatch', /made for another model/],
    ['PEFT weights over MAX_PREFIX_FILE_BYTES', peftFiles(buildPeftAdapter({ ...stories, P: 512 })), { id: 'bad' }, 413, 'payload_too_large', /'adapter_model\.safetensors' is over the limit of 32768 bytes/],
    ['a file over MAX_PREFIX_FILE_BYTES', { 'prefix.safetensors': Buffer.alloc(MAX_FILE + 1, 1) }, { id: 'bad' }, 413, 'payload_too_large', /'prefix\.safetensors' is over the limit of 32768 bytes/],
    ['only the config', { 'adapter_config.json': good.configJson }, { id: 'bad' }, 422, 'invalid_prefix', /'adapter_model\.safetensors' is missing/],
    ['both formats', { ...peftFiles(good), 'prefix.safetensors': buildNativeFile({ ...stories, P: 2 }).file }, { id: 'bad' }, 422, 'invalid_prefix', /ambiguous/],
    ['an unexpected file', { 'weights.npy': 'x' }, { id: 'bad' }, 422, 'invalid_prefix', /unexpected file 'weights\.npy'/],
    ['no files', {}, { id: 'bad' }, 422, 'validation', /no files/],
    ['no id', peftFiles(good), {}, 422, 'validation', /lacks the field 'id'/],
    ['an id with a slash', peftFiles(good), { id: 'a/b' }, 422, 'validation', /not a valid prefix id/],
    ['the id ..', peftFiles(good), { id: '..' }, 422, 'validation', /not a valid prefix id/],
    ['an id of 129 characters', peftFiles(good), { id: 'x'.repeat(129) }, 422, 'validation', /not a valid prefix id/],
    ['an unknown field', peftFiles(good), { id: 'bad', owner: 'me' }, 422, 'validation', /unknown field 'owner'/],
    ['a description too long', peftFiles(good), { id: 'bad', description: 'd'.repeat(1025) }, 422, 'validation', /description is 1025 characters/],
  )
  for (const [label, files, fields, status, type, message] of cases) {
    const r = await upload(app, 'POST', '/prefixes', files, fields)
    t.equal(r.status, status, label)
    t.equal(r.body.error_type, type, label)
    t.match(r.body.error, message, label)
  }
  const json = await app.inject({ method: 'POST', url: '/prefixes', payload: { id: 'bad' } })
  t.equal(json.statusCode, 415)
  t.match(json.json().error, /multipart\/form-data/)
  // A failed replacement keeps the previous version serving.
  const failedPut = await upload(app, 'PUT', '/prefixes/dog', { 'prefix.safetensors': corruptNativeFiles()[0].bytes })
  t.equal(failedPut.status, 422)
  t.equal((await app.inject({ method: 'GET', url: '/prefixes/dog' })).json().version, 2)
  t.equal((await app.inject({ method: 'GET', url: '/prefixes/bad' })).statusCode, 404)
  t.same(readdirSync(blobDir).sort(), blobsBefore, 'no blob, not even a temporary file, was left')
  t.equal((await generateIds('dog', 'Once', 3)).status, 200)
})

t.test('a good upload of the same shape still works after all that', async (t) => {
  const r = await upload(app, 'POST', '/prefixes', peftFiles(buildPeftAdapter({ ...stories, P: 4, dtype: 'BF16' })), { id: 'bf16' })
  t.equal(r.status, 201)
  t.equal(r.body.dtype, 'BF16')
  t.equal((await generateIds('bf16', 'Once upon', 4)).ids?.length, 4)
})

function peftFiles(f: { configJson: string; safetensors: Buffer }) {
  return { 'adapter_config.json': f.configJson, 'adapter_model.safetensors': f.safetensors }
}

t.test('the index survives a restart', async (t) => {
  const before = (await app.inject({ method: 'GET', url: '/prefixes' })).json() as { prefixes: Array<{ id: string; sha256: string }> }
  await app.close()
  const restarted = await startApp(t, storiesModelDir, { PREFIX_DIR: prefixDir, MAX_PREFIX_FILE_BYTES: MAX_FILE })
  const after = (await restarted.inject({ method: 'GET', url: '/prefixes' })).json() as typeof before
  t.same(after.prefixes, before.prefixes, 'the same ids, versions and blobs')
  const robot = readExpected(join(robotDir, 'expected.json')).cases[1]
  const res = await restarted.inject({ method: 'POST', url: '/generate', payload: { inputs: robot.prompt, parameters: { prefix_id: 'dog', max_new_tokens: robot.generated_ids.length, details: true } } })
  t.same((res.json() as GenerateReply).details?.tokens.map((x) => x.id), robot.generated_ids, "dog's second version still serves")
})
