/**
 * A PUT racing a DELETE never brings the deleted id back, embedded or on
 * Redis: a replacement holds only over the version it read, checked in the
 * same atomic step as the write. The race is made certain, not left to
 * chance: the PUT has read the record when the DELETE runs to its end, and
 * only then goes on to write.
 */
import type { PrefixIndex } from '../../src/prefixes/store/prefix-record.js'
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startApp } from '../helpers/app.js'
import { buildPeftAdapter } from '../helpers/prefix-fixtures.js'
import { upload } from '../helpers/prefix-upload.js'
import { startRedis } from '../helpers/redis-server.js'
import { generatedModel } from '../helpers/tiny-model.js'

const modelDir = await generatedModel('llama')
const ROUNDS = 20

for (const backend of ['embedded', 'redis'] as const) {
  t.test(`${backend}: ${ROUNDS} rounds of PUT racing DELETE`, async (t) => {
    const store = mkdtempSync(join(tmpdir(), 'prefixd-race-'))
    t.teardown(() => rmSync(store, { recursive: true, force: true }))
    const redisUrl = backend === 'redis' ? (await startRedis(t)).url : ''
    const app = await startApp(t, modelDir, { PREFIX_DIR: store, REDIS_URL: redisUrl })
    const spec = app.engine.spec
    const files = (seed: number) => {
      const a = buildPeftAdapter({ layers: spec.numLayers, kvHeads: spec.numKvHeads, headDim: spec.headDim, P: 2, seed })
      return { 'adapter_config.json': a.configJson, 'adapter_model.safetensors': a.safetensors }
    }
    // A gate on the index's reads (the real index, every call goes through):
    // the next read returns its record only once `hold` settles.
    const index = (app.prefixStore as unknown as { opts: { index: PrefixIndex } }).opts.index
    const get = index.get.bind(index)
    let gate: { entered(): void; hold: Promise<unknown> } | null = null
    index.get = async (id) => {
      const record = await get(id)
      const g = gate
      gate = null
      if (g) {
        g.entered()
        await g.hold
      }
      return record
    }
    for (let round = 0; round < ROUNDS; round++) {
      const id = `race-${round}`
      t.equal((await upload(app, 'POST', '/prefixes', files(1), { id })).status, 201)
      let release = () => {}
      const entered = new Promise<void>((resolve) => (gate = { entered: resolve, hold: new Promise<void>((r) => (release = r)) }))
      const put = upload(app, 'PUT', `/prefixes/${id}`, files(round + 2))
      await entered // the PUT has read version 1...
      const deleted = await app.inject({ method: 'DELETE', url: `/prefixes/${id}` })
      t.equal(deleted.statusCode, 204, `round ${round}: deleted`) // ...the DELETE is done...
      release() // ...and only now the PUT writes.
      t.equal((await put).status, 404, `round ${round}: the PUT finds the id gone`)
      t.equal((await app.inject({ method: 'GET', url: `/prefixes/${id}` })).statusCode, 404, `round ${round}: the deleted id stays deleted`)
    }
  })
}
