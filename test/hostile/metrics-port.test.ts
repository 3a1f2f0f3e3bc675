/**
 * METRICS_PORT: /metrics (whose labels name prefix ids and tenants) moves to
 * a listener of its own, and the API port no longer serves it.
 */
import t from 'tap'
import { request } from 'undici'
import { startApp } from '../helpers/app.js'
import { freePort } from '../helpers/free-port.js'
import { generatedModel } from '../helpers/tiny-model.js'

const metricsPort = await freePort()
const app = await startApp(t, await generatedModel('llama'), { METRICS_PORT: metricsPort, HOST: '127.0.0.1' })
const base = await app.listen({ host: '127.0.0.1', port: 0 })

t.test('the API port does not serve /metrics; the metrics port serves only it', async (t) => {
  const gen = await request(`${base}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: 'a', parameters: { max_new_tokens: 1 } }) })
  t.equal(gen.statusCode, 200)
  await gen.body.dump()
  const onApi = await request(`${base}/metrics`)
  t.equal(onApi.statusCode, 404, 'not on the API port')
  t.equal(((await onApi.body.json()) as { error_type: string }).error_type, 'not_found')
  const scrape = await request(`http://127.0.0.1:${metricsPort}/metrics`)
  t.equal(scrape.statusCode, 200)
  t.match(scrape.headers['content-type'], /text\/plain/)
  t.match(await scrape.body.text(), /prefixd_requests_total\{[^}]*tenant="anonymous"[^}]*\} 1/, 'the request is counted there')
  const other = await request(`http://127.0.0.1:${metricsPort}/health`)
  t.equal(other.statusCode, 404, 'nothing else on the metrics port')
  await other.body.dump()
})

t.test('closing the app closes the metrics listener', async (t) => {
  await app.close()
  t.equal(app.metricsServer?.listening, false)
})
