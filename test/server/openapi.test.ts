/**
 * The OpenAPI document: valid OpenAPI 3 (checked by swagger-parser), built
 * from the route schemas, listing every route the app serves (read back from
 * Fastify's own router), served as JSON and as a browsable UI.
 */
import t from 'tap'
import SwaggerParser from '@apidevtools/swagger-parser'
import type { OpenAPIV3 } from 'openapi-types'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startApp } from '../helpers/app.js'
import { generatedModel } from '../helpers/tiny-model.js'

const prefixDir = mkdtempSync(join(tmpdir(), 'prefixd-openapi-'))
t.teardown(() => rmSync(prefixDir, { recursive: true, force: true }))
const app = await startApp(t, await generatedModel('llama'), { PREFIX_DIR: prefixDir })

/** "METHOD /path" of every route in Fastify's router, from printRoutes' tree (params as {name}). */
function registeredRoutes(): Set<string> {
  const routes = new Set<string>()
  const stack: Array<{ depth: number; path: string }> = []
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^([\s│]*)[├└]── (\S*)(?: \(([^)]*)\))?/.exec(line)
    if (m === null) continue
    const depth = m[1].length
    while (stack.length > 0 && stack.at(-1)!.depth >= depth) stack.pop()
    const path = (stack.at(-1)?.path ?? '') + m[2]
    stack.push({ depth, path })
    for (const method of (m[3] ?? '').split(',').map((x) => x.trim()).filter(Boolean)) {
      routes.add(`${method} ${path.replace(/:(\w+)/g, '{$1}')}`)
    }
  }
  return routes
}

t.test('GET /openapi.json is a valid OpenAPI 3 document listing every route', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/openapi.json' })
  t.equal(res.statusCode, 200)
  const doc = res.json() as OpenAPIV3.Document
  t.match(doc.openapi, /^3\./)
  await SwaggerParser.validate(structuredClone(doc) as never)
  t.pass('swagger-parser validates it')

  const documented = new Set<string>()
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of ['get', 'put', 'post', 'delete', 'patch'] as const) if (item?.[method]) documented.add(`${method.toUpperCase()} ${path}`)
  }
  const served = [...registeredRoutes()].filter((r) => !r.startsWith('HEAD ') && !r.includes(' /docs') && r !== 'GET /openapi.json')
  t.ok(served.length >= 15, `found the routes: ${served.join(', ')}`)
  for (const route of served) t.ok(documented.has(route), `${route} is documented`)
  for (const route of ['POST /v1/completions', 'POST /v1/chat/completions', 'GET /v1/models', 'GET /v1/models/{model}', 'POST /generate', 'POST /generate_stream']) {
    t.ok(documented.has(route), route)
  }

  // Every generation and store operation says what it does and how it fails.
  const unsummarized: string[] = []
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of ['get', 'put', 'post', 'delete'] as const) {
      const op = item?.[method]
      if (!op) continue
      if (!/^\/(v1|generate|prefixes)/.test(path)) {
        if (!op.summary) unsummarized.push(`${method} ${path}`)
        continue
      }
      t.ok(op.summary, `${method} ${path} has a summary`)
      t.ok(op.responses['400'] && op.responses['404'], `${method} ${path} documents its errors`)
    }
  }
  if (unsummarized.length > 0) t.comment(`operations without a summary (their schemas belong to other plugins): ${unsummarized.join(', ')}`)
  // Every field of the OpenAI request bodies is described.
  for (const path of ['/v1/completions', '/v1/chat/completions']) {
    const body = doc.paths[path]!.post!.requestBody as OpenAPIV3.RequestBodyObject
    const schema = body.content['application/json'].schema as OpenAPIV3.SchemaObject
    for (const [field, s] of Object.entries(schema.properties!)) {
      const described = (x: OpenAPIV3.SchemaObject): boolean => Boolean(x.description) || (x.anyOf ?? x.oneOf ?? []).some((y) => described(y as OpenAPIV3.SchemaObject))
      t.ok(described(s as OpenAPIV3.SchemaObject), `${path} ${field} has a description`)
    }
  }
  const error = (doc.paths['/v1/completions']!.post!.responses['404'] as OpenAPIV3.ResponseObject).content!['application/json'].schema
  t.match(JSON.stringify(error), /"message"/, 'OpenAI error shape on /v1')
  for (const path of ['/v1/completions', '/v1/chat/completions']) {
    const ok = doc.paths[path]!.post!.responses['200'] as OpenAPIV3.ResponseObject
    t.same(Object.keys(ok.content!).sort(), ['application/json', 'text/event-stream'], `${path}: JSON, or events when streamed`)
  }
})

t.test('the browsable UI at /docs', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/docs' })
  const page = res.statusCode === 302 ? await app.inject({ method: 'GET', url: res.headers.location as string }) : res
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.body, /swagger-ui/i)
  const json = await app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(json.json().info.title, 'prefixd')
})
