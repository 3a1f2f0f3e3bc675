/**
 * Two prefixd replicas sharing one real redis-server (each with its own disk):
 * an upload on A serves on B; a replacement on A while B generates leaves B's
 * running request on the old version and B's next one on the new version
 * within a second; Redis killed under load and restarted: cached prefixes keep
 * generating, the rest fail fast with 503 store_unavailable, and everything
 * comes back without a restart and without losing an upload.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { startApp, type GenerateReply } from '../helpers/app.js'
import { tinyLlamaAdapterFiles, upload } from '../helpers/prefix-upload.js'
import { startRedis } from '../helpers/redis-server.js'
import { generatedModel } from '../helpers/tiny-model.js'

const modelDir = await generatedModel('llama')
const redis = await startRedis(t, { persistent: true })
const tmp = mkdtempSync(join(tmpdir(), 'prefixd-replicas-'))
t.teardown(() => rmSync(tmp, { recursive: true, force: true }))
const replica = (name: string) =>
  startApp(t, modelDir, { PREFIX_DIR: join(tmp, name), REDIS_URL: redis.url, STORE_TIMEOUT_MS: 500, MAX_BATCH_SIZE: 8 })
const [a, b] = await Promise.all([replica('a'), replica('b')])

const adapter = (seed: number, P = 4) => tinyLlamaAdapterFiles(seed, P)

async function generate(app: FastifyInstance, prefixId: string, maxNewTokens = 8) {
  const res = await app.inject({
    method: 'POST', url: '/generate',
    payload: { inputs: 'Once upon a time', parameters: { prefix_id: prefixId, max_new_tokens: maxNewTokens, details: true } },
  })
  const body = res.json() as GenerateReply & { error_type?: string }
  return { status: res.statusCode, ids: body.details?.tokens.map((x) => x.id).join(','), body }
}

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs: number): Promise<{ value: T; ms: number }> {
  const started = Date.now()
  for (;;) {
    const value = await fn()
    if (ok(value) || Date.now() - started > timeoutMs) return { value, ms: Date.now() - started }
    await new Promise((r) => setTimeout(r, 10))
  }
}

t.test('upload on A, generate on B', async (t) => {
  t.equal((await upload(a, 'POST', '/prefixes', adapter(1), { id: 'p' })).status, 201)
  const onA = await generate(a, 'p')
  const onB = await generate(b, 'p')
  t.equal(onB.status, 200)
  t.equal(onB.ids, onA.ids, 'both replicas serve the same version')
  t.equal((await b.inject({ method: 'GET', url: '/prefixes/p' })).json().version, 1)
})

t.test('the same new id uploaded on both replicas at once: one wins, the other gets 409', async (t) => {
  const [ra, rb] = await Promise.all([upload(a, 'POST', '/prefixes', adapter(6), { id: 'race' }), upload(b, 'POST', '/prefixes', adapter(7), { id: 'race' })])
  t.same([ra.status, rb.status].sort(), [201, 409])
  const winner = ra.status === 201 ? ra : rb
  const onB = await b.inject({ method: 'GET', url: '/prefixes/race/download' })
  t.equal(onB.headers.etag, `"${String(winner.body.sha256)}"`, 'both replicas serve the winner')
  t.equal((await generate(a, 'race')).ids, (await generate(b, 'race')).ids)
  t.equal((await b.inject({ method: 'DELETE', url: '/prefixes/race' })).statusCode, 204)
})

t.test('replace on A while B generates: B finishes on the old version, then switches within 1 s', async (t) => {
  // References: each version's greedy output, from ids that never change.
  await upload(a, 'POST', '/prefixes', adapter(1), { id: 'ref-v1' })
  await upload(a, 'POST', '/prefixes', adapter(2), { id: 'ref-v2' })
  const long = 200
  const v1 = await generate(b, 'ref-v1', long)
  const v2 = await generate(b, 'ref-v2', long)
  t.not(v1.ids, v2.ids, 'the two versions generate differently')

  await upload(a, 'POST', '/prefixes', adapter(1), { id: 'swap' })
  t.equal((await generate(b, 'swap', long)).ids, v1.ids)
  const running = generate(b, 'swap', long)
  await until(async () => b.engine.stats.running, (n) => n > 0, 5000)
  const put = await upload(a, 'PUT', '/prefixes/swap', adapter(2))
  t.equal(put.status, 200)
  t.equal(put.body.version, 2)
  const putDone = Date.now()
  const switched = await until(() => generate(b, 'swap', 4), (r) => r.ids === v2.ids?.split(',').slice(0, 4).join(','), 1000)
  t.ok(switched.ms < 1000, `B serves the new version ${Date.now() - putDone} ms after the PUT returned`)
  const finished = await running
  t.equal(finished.status, 200)
  t.equal(finished.ids, v1.ids, 'the request in flight finished on the version it started with')
  t.equal((await generate(a, 'swap', long)).ids, v2.ids, 'A switched at once')

  t.equal((await a.inject({ method: 'DELETE', url: '/prefixes/swap' })).statusCode, 204)
  const gone = await until(() => generate(b, 'swap', 2), (r) => r.status === 404, 1000)
  t.equal(gone.value.status, 404, `deleted on B after ${gone.ms} ms`)
})

t.test('Redis killed under load and restarted', async (t) => {
  await upload(a, 'POST', '/prefixes', adapter(3), { id: 'hot' })
  await upload(a, 'POST', '/prefixes', adapter(4), { id: 'cold' })
  const hot = await generate(b, 'hot', 16) // now cached on B
  const load = Array.from({ length: 6 }, () => generate(b, 'hot', 120))
  await until(async () => b.engine.stats.running, (n) => n > 0, 5000)
  await redis.kill()

  const started = Date.now()
  const during = await generate(b, 'hot', 16)
  t.equal(during.status, 200, 'a cached prefix keeps generating')
  t.equal(during.ids, hot.ids)
  const miss = await generate(b, 'cold')
  t.equal(miss.status, 503, 'a cache miss fails fast')
  t.equal(miss.body.error_type, 'store_unavailable')
  const refused = await upload(a, 'POST', '/prefixes', adapter(5), { id: 'while-down' })
  t.equal(refused.status, 503)
  t.equal(refused.body.error_type, 'store_unavailable')
  t.match(refused.body.error, /Redis/)
  t.equal((await a.inject({ method: 'GET', url: '/prefixes' })).statusCode, 503)
  t.ok(Date.now() - started < 3000, `the failures took ${Date.now() - started} ms, not a hang`)
  const notReady = await a.inject({ method: 'GET', url: '/ready' })
  t.equal(notReady.statusCode, 503, 'not ready while Redis is away')
  t.match(notReady.json().error, /Redis/)
  for (const r of await Promise.all(load)) t.equal(r.status, 200, 'requests running through the outage finish')

  await redis.restart()
  const back = await until(() => generate(b, 'cold'), (r) => r.status === 200, 10_000)
  t.equal(back.value.status, 200, `B recovered ${back.ms} ms after the restart, without restarting itself`)
  const again = await until(() => upload(a, 'POST', '/prefixes', adapter(5), { id: 'after' }), (r) => r.status === 201, 10_000)
  t.equal(again.value.status, 201, 'A accepts uploads again')
  t.equal((await a.inject({ method: 'GET', url: '/ready' })).statusCode, 200, 'ready again')
  const metrics = (await b.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /prefixd_prefix_cache_hits_total [1-9]/, 'cache hits counted')
  t.match(metrics, /prefixd_prefix_cache_misses_total [1-9]/, 'cache misses counted')
  t.match(metrics, /prefixd_prefix_cache_entries [1-9]/)
  t.match((await a.inject({ method: 'GET', url: '/metrics' })).body, /prefixd_prefix_uploads_total\{outcome="store_unavailable"\} 1/)
  const list = (await b.inject({ method: 'GET', url: '/prefixes' })).json() as { prefixes: Array<{ id: string }> }
  t.same(list.prefixes.map((p) => p.id), ['after', 'cold', 'hot', 'p', 'ref-v1', 'ref-v2'], 'nothing uploaded before was lost')
})
