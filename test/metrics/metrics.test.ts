/**
 * Per-prefix metrics as an operator sees them: counts that match the traffic,
 * text that promtool accepts, a bounded prefix label, and a real Prometheus
 * server scraping prefixd and answering a p50 query.
 */
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { LabelGuard, OTHER_LABEL } from '../../src/metrics/label-guard.js'
import { PrefixdMetrics } from '../../src/metrics/prefixd-metrics.js'
import { startApp } from '../helpers/app.js'
import { freePort } from '../helpers/free-port.js'
import { buckets, histogramQuantile, sampleValue } from '../helpers/prom-text.js'
import { storiesModelDir, storiesPrefixStore } from '../helpers/shared-data.js'

const app = await startApp(t, storiesModelDir, { PREFIX_DIR: storiesPrefixStore(t), PREFIX_LABEL_LIMIT: 3 })
const generate = (prefix: string | string[] | null, max: number) =>
  app.inject({ method: 'POST', url: '/generate', payload: { inputs: 'Once upon a time', parameters: { prefix_id: prefix, max_new_tokens: max } } })

// A mixed workload: each prefix's requests, with known token counts, at once.
const workload: Array<[string | string[] | null, number, string]> = [
  ['dog-max', 5, 'dog-max'],
  ['dog-max', 7, 'dog-max'],
  ['dog-max', 3, 'dog-max'],
  ['robot-benny', 4, 'robot-benny'],
  ['robot-benny', 6, 'robot-benny'],
  [null, 2, '(base)'],
]
const replies = await Promise.all(workload.map(([p, n]) => generate(p, n)))
const text = (await app.inject({ method: 'GET', url: '/metrics' })).body

t.test('each prefix histogram counts exactly the requests sent with it', async (t) => {
  for (const r of replies) t.equal(r.statusCode, 200)
  for (const label of ['dog-max', 'robot-benny', '(base)']) {
    const sent = workload.filter((w) => w[2] === label)
    const tokens = sent.reduce((n, w) => n + w[1], 0)
    for (const h of ['request_duration_seconds', 'time_to_first_token_seconds', 'queue_time_seconds']) {
      t.equal(sampleValue(text, `prefixd_${h}_count`, { prefix: label, tenant: 'anonymous' }), sent.length, `${h} ${label}`)
    }
    t.equal(sampleValue(text, 'prefixd_requests_total', { prefix: label, tenant: 'anonymous', outcome: 'success' }), sent.length)
    t.equal(sampleValue(text, 'prefixd_generated_tokens_total', { prefix: label, tenant: 'anonymous' }), tokens)
    t.ok(sampleValue(text, 'prefixd_prompt_tokens_total', { prefix: label, tenant: 'anonymous' })! > 0)
  }
  t.equal(sampleValue(text, 'prefixd_time_per_output_token_seconds_count', { prefix: 'dog-max', tenant: 'anonymous' }), 3)
  t.ok(sampleValue(text, 'prefixd_process_resident_memory_bytes')! > 0, 'default process metrics')
  t.not(sampleValue(text, 'prefixd_running_requests'), undefined)
})

t.test('TGI-style timing headers', async (t) => {
  const r = replies[0]
  t.equal(r.headers['x-prefix-id'], 'dog-max')
  t.equal(r.headers['x-generated-tokens'], '5')
  for (const h of ['x-queue-time', 'x-time-to-first-token', 'x-total-time']) t.ok(Number(r.headers[h]) >= 0, h)
  t.ok(Number(r.headers['x-total-time']) >= Number(r.headers['x-time-to-first-token']))
})

t.test('promtool accepts the exposition', async (t) => {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  t.equal(r.error, undefined, 'promtool runs (Debian package prometheus; .ci/run installs it)')
  t.equal(r.status, 0, `${r.stdout}${r.stderr}`)
})

t.test('the prefix label is bounded; the most used keep their own series', async (t) => {
  // Limit 3: dog-max, robot-benny and (base) hold the labels, so a composed
  // prefix used once is counted under __other__.
  const r = await generate(['dog-max', 'robot-benny'], 2)
  t.equal(r.statusCode, 200)
  const after = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.equal(sampleValue(after, 'prefixd_requests_total', { prefix: OTHER_LABEL, tenant: 'anonymous', outcome: 'success' }), 1)
  t.equal(sampleValue(after, 'prefixd_requests_total', { prefix: 'dog-max+robot-benny', tenant: 'anonymous', outcome: 'success' }), undefined)

  const evicted: string[] = []
  const guard = new LabelGuard(2, (l) => evicted.push(l))
  t.equal(guard.label('a'), 'a')
  t.equal(guard.label('b'), 'b')
  t.equal(guard.label('c'), OTHER_LABEL)
  guard.label('a')
  t.equal(guard.label('c'), OTHER_LABEL, 'not yet more than twice as used as b')
  t.equal(guard.label('c'), 'c', 'promoted once it outgrows the least used label')
  t.same(evicted, ['b'])
  guard.forget('a')
  t.same(evicted, ['b', 'a'], 'a deleted prefix drops its series')
  t.equal(guard.label('d'), 'd', 'its label slot is free again')
})

t.test('forgetting a prefix removes its series from the exposition', async (t) => {
  const m = new PrefixdMetrics(10)
  m.observeRequest({ prefix: 'gone', tenant: 'a', outcome: 'success', promptTokens: 3, generatedTokens: 2, durationS: 0.1, queueS: 0.01, timeToFirstTokenS: 0.05 })
  m.observeRequest({ prefix: 'gone', tenant: 'b', outcome: 'validation', promptTokens: 3, generatedTokens: 0, durationS: 0.1 })
  m.observeRequest({ prefix: 'kept', tenant: 'a', outcome: 'success', promptTokens: 3, generatedTokens: 2, durationS: 0.1 })
  const before = await m.registry.metrics()
  t.match(before, /prefixd_requests_total\{prefix="gone",tenant="b",outcome="validation"\} 1/, 'series per tenant')
  t.match(await m.registry.metrics(), /prefix="gone"/)
  m.forgetPrefix('gone')
  const after = await m.registry.metrics()
  t.notMatch(after, /prefix="gone"/, "every tenant's series of the prefix is gone")
  t.match(after, /prefix="kept"/)
})

t.test('deleting a prefix drops the series of the compositions that name it', async (t) => {
  const m = new PrefixdMetrics(10)
  const seen = (prefix: string) => m.observeRequest({ prefix, tenant: 'a', outcome: 'success', promptTokens: 3, generatedTokens: 2, durationS: 0.1 })
  for (const p of ['p1+p2', 'p2+p1', 'p1', 'p2', 'p10+p2', 'xp1+p2']) seen(p)
  m.forgetPrefix('p1')
  const after = await m.registry.metrics()
  for (const gone of ['p1+p2', 'p2+p1', 'p1']) t.notMatch(after, new RegExp(`prefix="${gone.replace('+', '\\+')}"`), `${gone} dropped`)
  for (const kept of ['p2', 'p10+p2', 'xp1+p2']) t.match(after, new RegExp(`prefix="${kept.replace('+', '\\+')}"`), `${kept} kept`)
})

t.test('a real Prometheus server scrapes prefixd and answers a p50 query', async (t) => {
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  const target = new URL(address).host
  const dir = mkdtempSync(join(tmpdir(), 'prefixd-prom-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: prefixd\n    static_configs:\n      - targets: ['${target}']\n`,
  )
  const port = await freePort()
  const prom = spawn('prometheus', [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
  ])
  let log = ''
  prom.stderr.on('data', (d) => (log += d))
  t.teardown(() => void prom.kill('SIGKILL'))
  const query = 'histogram_quantile(0.5, sum by (le) (prefixd_request_duration_seconds_bucket{prefix="dog-max"}))'
  const deadline = Date.now() + 60_000
  let value: number | undefined
  while (value === undefined && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500))
    try {
      const res = await request(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(query)}`)
      const body = (await res.body.json()) as { data?: { result?: Array<{ value: [number, string] }> } }
      const first = body.data?.result?.[0]
      if (first) value = Number(first.value[1])
    } catch {
      // not up yet
    }
  }
  t.ok(value !== undefined, `Prometheus answered (log tail: ${log.slice(-300)})`)
  // The same quantile, computed here from prefixd's own exposition.
  const scraped = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const expected = histogramQuantile(0.5, buckets(scraped, 'prefixd_request_duration_seconds', { prefix: 'dog-max' }))
  t.ok(Math.abs(value! - expected) < 1e-9, `p50 ${value} = ${expected}`)
})
