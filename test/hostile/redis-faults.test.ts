/**
 * Redis faults are loud. A Redis that comes back empty is detected (its
 * marker key is gone): logged at error, counted, /ready 503 with the reason
 * for a while, and the folder prefixes registered again. A stalled Redis
 * (process stopped, connections open) turns /ready 503 within the store
 * timeout, and ready again once it answers.
 */
import t from 'tap'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/load-config.js'
import { buildPeftAdapter } from '../helpers/prefix-fixtures.js'
import { upload } from '../helpers/prefix-upload.js'
import { startRedis } from '../helpers/redis-server.js'
import { generatedModel } from '../helpers/tiny-model.js'

const modelDir = await generatedModel('llama')

/** Polls `check` between event-loop turns until it returns a value (the tap timeout catches a hang). */
async function until<T>(check: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    await new Promise((r) => setTimeout(r, 10))
  }
}

async function serve(redisUrl: string) {
  const prefixDir = mkdtempSync(join(tmpdir(), 'prefixd-faults-'))
  t.teardown(() => rmSync(prefixDir, { recursive: true, force: true }))
  const lines: Array<{ level: number; msg: string }> = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as { level: number; msg: string })
      done()
    },
  })
  const config = loadConfig({}, { LOG_LEVEL: 'info', INTRA_OP_THREADS: 1, PREFIX_DIR: prefixDir, REDIS_URL: redisUrl, PREFIX_RECHECK_MS: 50, STORE_TIMEOUT_MS: 300 })
  const app = await buildApp({ config, modelDir, logger: { level: 'info', stream } })
  t.teardown(() => app.close())
  await app.ready()
  const spec = app.engine.spec
  const adapter = buildPeftAdapter({ layers: spec.numLayers, kvHeads: spec.numKvHeads, headDim: spec.headDim, P: 2 })
  return { app: app as FastifyInstance, lines, prefixDir, adapter }
}

const ready = async (app: FastifyInstance) => {
  const res = await app.inject({ method: 'GET', url: '/ready' })
  return { status: res.statusCode, error: (res.json() as { error?: string }).error }
}

t.test('Redis back empty: loud, counted, 503 with the reason, folder prefixes back', async (t) => {
  const redis = await startRedis(t)
  const { app, lines, prefixDir, adapter } = await serve(redis.url)
  // A folder prefix, registered by the running server's next loss recovery (and at start-up in general).
  mkdirSync(join(prefixDir, 'from-folder'))
  writeFileSync(join(prefixDir, 'from-folder', 'adapter_config.json'), adapter.configJson)
  writeFileSync(join(prefixDir, 'from-folder', 'adapter_model.safetensors'), adapter.safetensors)
  t.equal((await upload(app, 'POST', '/prefixes', { 'adapter_config.json': adapter.configJson, 'adapter_model.safetensors': adapter.safetensors }, { id: 'uploaded' })).status, 201)
  t.equal((await ready(app)).status, 200)

  await redis.kill()
  await redis.restart() // no persistence: it comes back empty
  const notReady = await until(async () => {
    const r = await ready(app)
    return r.status === 503 && /lost its data/.test(r.error ?? '') ? r : undefined
  })
  t.match(notReady.error, /lost its data \(Redis came back empty or was flushed\)/, '/ready says why')
  t.ok(lines.some((l) => l.level === 50 && /lost its data/.test(l.msg)), 'logged at error')
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /prefixd_prefix_index_data_losses_total 1/, 'counted')
  await until(async () => ((await app.inject({ method: 'GET', url: '/prefixes/from-folder' })).statusCode === 200 ? true : undefined))
  t.pass('the folder prefix is registered again')
  t.equal((await app.inject({ method: 'GET', url: '/prefixes/uploaded' })).statusCode, 404, 'the upload is gone, as the log says')
  await until(async () => ((await ready(app)).status === 200 ? true : undefined))
  t.pass('ready again once the alarm period is over')
})

t.test('a stalled Redis: /ready 503 within the store timeout, 200 once it answers', async (t) => {
  const redis = await startRedis(t)
  const { app } = await serve(redis.url)
  t.equal((await ready(app)).status, 200)
  redis.signal('SIGSTOP')
  t.teardown(() => redis.signal('SIGCONT'))
  const stalled = await until(async () => {
    const r = await ready(app)
    return r.status === 503 ? r : undefined
  })
  t.match(stalled.error, /not answering/)
  redis.signal('SIGCONT')
  await until(async () => ((await ready(app)).status === 200 ? true : undefined))
  t.pass('ready again')
})
