/**
 * The isolation matrix: every route × {the owner, another tenant, an admin}
 * × {a private prefix, a public one}. Another tenant's private prefix answers
 * exactly like a missing one; a public one may be used but not changed.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hashKey, newKey } from '../../src/auth/api-keys.js'
import { startApp } from '../helpers/app.js'
import { tinyLlamaAdapterFiles, uploadForm } from '../helpers/prefix-upload.js'
import { generatedModel } from '../helpers/tiny-model.js'

const keys = { alice: newKey(), bob: newKey(), root: newKey() }
const API_KEYS = [`alice:tenant:${hashKey(keys.alice)}`, `bob:tenant:${hashKey(keys.bob)}`, `root:admin:${hashKey(keys.root)}`].join(',')
type Who = keyof typeof keys
const store = mkdtempSync(join(tmpdir(), 'prefixd-isolation-'))
t.teardown(() => rmSync(store, { recursive: true, force: true }))
const app = await startApp(t, await generatedModel('llama'), { PREFIX_DIR: store, API_KEYS, TENANT_MAX_PREFIXES: 3 })

const adapter = (seed: number) => tinyLlamaAdapterFiles(seed, 3)
const headers = (who: Who) => ({ authorization: `Bearer ${keys[who]}` })
const send = (who: Who, method: 'POST' | 'PUT', url: string, fields: Record<string, string>, seed = 1) =>
  app.inject({ method, url, headers: headers(who), payload: uploadForm(adapter(seed), fields) })

t.test('uploads take the caller as owner; visibility defaults to private', async (t) => {
  const priv = await send('alice', 'POST', '/prefixes', { id: 'alice-private' })
  t.equal(priv.statusCode, 201)
  t.match(priv.json(), { owner: 'alice', visibility: 'private' })
  const pub = await send('alice', 'POST', '/prefixes', { id: 'alice-public', visibility: 'public' })
  t.match(pub.json(), { owner: 'alice', visibility: 'public' })
  const bad = await send('alice', 'POST', '/prefixes', { id: 'x', visibility: 'everyone' })
  t.equal(bad.statusCode, 422)
  t.match(bad.json().error, /visibility/)
})

t.test('the matrix', async (t) => {
  const generate = (who: Who, id: string) =>
    app.inject({ method: 'POST', url: '/generate', headers: headers(who), payload: { inputs: 'hello', parameters: { prefix_id: id, max_new_tokens: 2 } } })
  const get = (who: Who, url: string) => app.inject({ method: 'GET', url, headers: headers(who) })
  const completion = (who: Who, model: string) =>
    app.inject({ method: 'POST', url: '/v1/completions', headers: headers(who), payload: { model, prompt: 'hello', max_tokens: 2 } })

  // [route, who, prefix, expected status]
  const cells: Array<[string, Who, string, number, () => Promise<{ statusCode: number }>]> = []
  for (const id of ['alice-private', 'alice-public']) {
    for (const who of ['alice', 'bob', 'root'] as Who[]) {
      const hidden = who === 'bob' && id === 'alice-private'
      cells.push(['generate', who, id, hidden ? 404 : 200, () => generate(who, id)])
      cells.push(['v1 completions', who, id, hidden ? 404 : 200, () => completion(who, id)])
      cells.push(['get', who, id, hidden ? 404 : 200, () => get(who, `/prefixes/${id}`)])
      cells.push(['download', who, id, hidden ? 404 : 200, () => get(who, `/prefixes/${id}/download`)])
      cells.push(['v1 model', who, id, hidden ? 404 : 200, () => get(who, `/v1/models/${id}`)])
      const change = hidden ? 404 : who === 'bob' ? 403 : 200
      cells.push(['replace', who, id, change, () => send(who, 'PUT', `/prefixes/${id}`, {}, 7)])
    }
  }
  for (const [route, who, id, status, run] of cells) t.equal((await run()).statusCode, status, `${route} × ${who} × ${id}`)

  // A hidden prefix is indistinguishable from a missing one (same status, same words).
  const hidden = await get('bob', '/prefixes/alice-private')
  const missing = await get('bob', '/prefixes/no-such-prefix')
  t.same(hidden.json(), { ...missing.json(), error: missing.json().error.replace('no-such-prefix', 'alice-private') })

  const ids = async (who: Who) => (await get(who, '/prefixes')).json().prefixes.map((p: { id: string }) => p.id)
  t.same(await ids('alice'), ['alice-private', 'alice-public'])
  t.same(await ids('bob'), ['alice-public'], "another tenant's private prefix is not listed")
  t.same(await ids('root'), ['alice-private', 'alice-public'])
  const models = (await get('bob', '/v1/models')).json().data.map((m: { id: string }) => m.id)
  t.notOk(models.includes('alice-private'))
  t.ok(models.includes('alice-public'))

  const replaced = (await get('alice', '/prefixes/alice-public')).json()
  t.equal(replaced.owner, 'alice', "an admin's replacement keeps the owner")
})

t.test('delete: hidden is 404, public-but-foreign is 403, owner and admin may', async (t) => {
  const del = (who: Who, id: string) => app.inject({ method: 'DELETE', url: `/prefixes/${id}`, headers: headers(who) })
  t.equal((await del('bob', 'alice-private')).statusCode, 404)
  t.equal((await del('bob', 'alice-public')).statusCode, 403)
  t.equal((await del('alice', 'alice-private')).statusCode, 204)
  t.equal((await del('root', 'alice-public')).statusCode, 204)
})

t.test('per-tenant storage limits', async (t) => {
  for (const id of ['q1', 'q2', 'q3']) t.equal((await send('bob', 'POST', '/prefixes', { id })).statusCode, 201, id)
  const over = await send('bob', 'POST', '/prefixes', { id: 'q4' })
  t.equal(over.statusCode, 413)
  t.equal(over.json().error_type, 'quota_exceeded')
  t.match(over.json().error, /at most 3 prefixes/)
  t.equal((await send('bob', 'PUT', '/prefixes/q1', {}, 9)).statusCode, 200, 'replacing does not count as one more')
  t.equal((await send('alice', 'POST', '/prefixes', { id: 'a1' })).statusCode, 201, "another tenant's limit is its own")
  t.equal((await send('root', 'POST', '/prefixes', { id: 'r1' })).statusCode, 201)
})
