/**
 * Naming another tenant's private prefix costs what naming a missing id
 * costs, even when this replica holds it in its cache: ownership is resolved
 * before any cache shortcut, so both take one index read and answer the same
 * 404. Counted in index reads (on Redis, one round trip each), not timed.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Principal } from '../../src/auth/api-keys.js'
import type { PrefixIndex } from '../../src/prefixes/store/prefix-record.js'
import { startApp } from '../helpers/app.js'
import { buildPeftAdapter } from '../helpers/prefix-fixtures.js'
import { uploadForm } from '../helpers/prefix-upload.js'
import { startRedis } from '../helpers/redis-server.js'
import { generatedModel } from '../helpers/tiny-model.js'

const alice: Principal = { tenant: 'alice', role: 'tenant' }
const bob: Principal = { tenant: 'bob', role: 'tenant' }

for (const backend of ['redis', 'embedded'] as const) {
  t.test(`${backend}: a cached private prefix of another tenant costs what a missing id costs`, async (t) => {
    const store = mkdtempSync(join(tmpdir(), 'prefixd-timing-'))
    t.teardown(() => rmSync(store, { recursive: true, force: true }))
    const redisUrl = backend === 'redis' ? (await startRedis(t)).url : ''
    const app = await startApp(t, await generatedModel('llama'), { PREFIX_DIR: store, REDIS_URL: redisUrl })
    const spec = app.engine.spec
    const a = buildPeftAdapter({ layers: spec.numLayers, kvHeads: spec.numKvHeads, headDim: spec.headDim, P: 2 })
    const files = uploadForm({ 'adapter_config.json': a.configJson, 'adapter_model.safetensors': a.safetensors }).getAll('file') as File[]
    await app.prefixStore.create('secret', { files: await Promise.all(files.map(async (f) => ({ filename: f.name, data: Buffer.from(await f.arrayBuffer()) }))), visibility: 'private' }, alice)
    await app.prefixStore.resolve('secret', alice) // now cached on this replica

    // A spy on the real index: every read still goes through.
    const index = (app.prefixStore as unknown as { opts: { index: PrefixIndex } }).opts.index
    const get = index.get.bind(index)
    let reads = 0
    index.get = (id) => (reads++, get(id))
    const attempt = async (id: string, who: Principal) => {
      reads = 0
      const err = await app.prefixStore.resolve(id, who).then(
        () => null,
        (e: { code?: string; message?: string }) => e,
      )
      return { reads, code: err?.code, message: err?.message?.replace(id, '<id>') }
    }
    const owner = await attempt('secret', alice)
    t.same(owner, { reads: 0, code: undefined, message: undefined }, 'its owner is served from the cache')
    const other = await attempt('secret', bob)
    const missing = await attempt('no-such-id', bob)
    t.same(other, missing, "another tenant's cached private prefix: the same reads and the same error as a missing id")
    t.equal(missing.reads, 1)
    t.equal(missing.code, 'PREFIXD_PREFIX_NOT_FOUND')
  })
}
