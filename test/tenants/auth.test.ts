/**
 * Tenants as the HTTP layer sees them: API keys (hashed) → tenant and role,
 * 401 for a wrong or missing key, open probes, per-tenant rate limits, and a
 * light tenant served while a heavy one floods the queue.
 */
import t from 'tap'
import { hashKey, newKey, parseKeyList } from '../../src/auth/api-keys.js'
import { runKeys } from '../../src/auth/keys-command.js'
import { startApp } from '../helpers/app.js'
import { storiesModelDir, storiesPrefixStore } from '../helpers/shared-data.js'

const keys = { heavy: newKey(), light: newKey(), root: newKey() }
const API_KEYS = [`heavy:tenant:${hashKey(keys.heavy)}`, `light:tenant:${hashKey(keys.light)}`, `root:admin:${hashKey(keys.root)}`].join(',')
const auth = (key: string) => ({ authorization: `Bearer ${key}` })

t.test('keys: parsing, and the keys command prints a usable entry', async (t) => {
  t.throws(() => parseKeyList('a:owner:' + 'f'.repeat(64)), /role must be admin or tenant/)
  t.throws(() => parseKeyList('a:tenant:xyz'), /sha256/)
  t.throws(() => parseKeyList('a b:tenant:' + 'f'.repeat(64)), /tenant/)
  let out = ''
  t.equal(runKeys(['new', '--tenant', 'acme'], (s) => (out += s)), 0)
  const key = /key:\s+(\S+)/.exec(out)![1]
  const line = /API_KEYS:\s+(\S+)/.exec(out)![1]
  t.same(parseKeyList(line), [{ tenant: 'acme', role: 'tenant', sha256: hashKey(key) }])
  t.notMatch(line, key, 'only the hash is to be configured')
  t.equal(runKeys(['new'], () => {}, () => {}), 2)
  t.equal(runKeys(['new', '--tenant', 'x', '--role', 'god'], () => {}, () => {}), 2)
})

t.test('a wrong or missing key is 401; probes stay open', async (t) => {
  const app = await startApp(t, storiesModelDir, { PREFIX_DIR: storiesPrefixStore(t), API_KEYS })
  const body = { inputs: 'Once upon a time', parameters: { max_new_tokens: 3 } }
  const none = await app.inject({ method: 'POST', url: '/generate', payload: body })
  t.equal(none.statusCode, 401)
  t.equal(none.json().error_type, 'unauthorized')
  const wrong = await app.inject({ method: 'POST', url: '/generate', payload: body, headers: auth(newKey()) })
  t.equal(wrong.statusCode, 401)
  t.match(wrong.json().error, /not valid/)
  const ok = await app.inject({ method: 'POST', url: '/generate', payload: body, headers: auth(keys.light) })
  t.equal(ok.statusCode, 200)
  for (const url of ['/health', '/ready', '/metrics', '/info']) t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url)
})

t.test('rate limits are per tenant', async (t) => {
  const app = await startApp(t, storiesModelDir, { PREFIX_DIR: storiesPrefixStore(t), API_KEYS, RATE_LIMIT_PER_MINUTE: 3 })
  const body = { inputs: 'Once', parameters: { max_new_tokens: 1 } }
  const send = (key: string) => app.inject({ method: 'POST', url: '/generate', payload: body, headers: auth(key) })
  for (let i = 0; i < 3; i++) t.equal((await send(keys.heavy)).statusCode, 200)
  const limited = await send(keys.heavy)
  t.equal(limited.statusCode, 429)
  t.equal(limited.json().error_type, 'rate_limited')
  t.equal((await send(keys.light)).statusCode, 200, 'another tenant is not limited by it')
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /prefixd_requests_total\{prefix="\(base\)",tenant="heavy",outcome="success"\} 3/, 'metrics are labelled by tenant')
  t.match(metrics, /prefixd_request_duration_seconds_count\{prefix="\(base\)",tenant="light"\} 1/)
})

t.test('fair share: a light tenant finishes while a heavy one keeps the queue full', async (t) => {
  const app = await startApp(t, storiesModelDir, { PREFIX_DIR: storiesPrefixStore(t), API_KEYS, MAX_BATCH_SIZE: 2 })
  let heavyDone = 0
  const heavy = Array.from({ length: 12 }, () =>
    app
      .inject({ method: 'POST', url: '/generate', headers: auth(keys.heavy), payload: { inputs: 'Once upon a time', parameters: { max_new_tokens: 200 } } })
      .then((r) => {
        heavyDone++
        return r.statusCode
      }),
  )
  while (app.engine.stats.waiting < 10) await new Promise((r) => setTimeout(r, 5))
  const light = await app.inject({
    method: 'POST',
    url: '/generate',
    headers: auth(keys.light),
    payload: { inputs: 'Once upon a time', parameters: { max_new_tokens: 20 } },
  })
  t.equal(light.statusCode, 200)
  t.ok(heavyDone <= 2, `the light request finished after ${heavyDone} of 12 heavy ones (not after all of them)`)
  t.same(await Promise.all(heavy), Array(12).fill(200))
})
