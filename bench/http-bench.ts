/**
 * The real HTTP server, in this process: buildApp + listen on a free port,
 * prefixes dropped into a temporary PREFIX_DIR as native prefix files, and
 * requests sent with undici, either all at once (16 concurrent clients) or one
 * after another.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { request } from 'undici'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config/load-config.js'
import { writeNativePrefix } from '../src/prefixes/native-format.js'
import type { PrefixKV } from '../src/domain/prefix-kv.js'
import type { Throughput } from './engine-batch.js'

export interface Server {
  app: FastifyInstance
  url: string
}

export async function startServer(modelDir: string, prefixDir: string, threads: number, maxBatchSize: number): Promise<Server> {
  const config = loadConfig({}, {
    PREFIX_DIR: prefixDir,
    INTRA_OP_THREADS: threads,
    MAX_BATCH_SIZE: maxBatchSize,
    LOG_LEVEL: 'silent',
    REQUEST_TIMEOUT_MS: 3_600_000,
  })
  const app = await buildApp({ config, modelDir, logger: false })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url }
}

/** Writes `<dir>/<id>/prefix.safetensors` for each prefix; returns the ids. */
export async function writePrefixFolder(dir: string, prefixes: readonly PrefixKV[]): Promise<string[]> {
  const ids: string[] = []
  for (const [i, p] of prefixes.entries()) {
    const id = `bench-${String(i).padStart(2, '0')}`
    await mkdir(join(dir, id), { recursive: true })
    await writeFile(join(dir, id, 'prefix.safetensors'), writeNativePrefix(p))
    ids.push(id)
  }
  return ids
}

export interface GenerateBody {
  inputs: string
  parameters: { prefix_id: string; max_new_tokens: number }
}

/** One POST /generate; returns the number of generated tokens. */
export async function generate(url: string, body: GenerateBody): Promise<number> {
  const res = await request(`${url}/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const text = await res.body.text()
  if (res.statusCode !== 200) throw new Error(`POST /generate answered ${res.statusCode}: ${text}`)
  return Number(res.headers['x-generated-tokens'])
}

export async function httpConcurrent(url: string, bodies: readonly GenerateBody[]): Promise<Throughput> {
  const started = performance.now()
  const counts = await Promise.all(bodies.map((b) => generate(url, b)))
  return { tokens: counts.reduce((a, b) => a + b, 0), seconds: (performance.now() - started) / 1000 }
}

export async function httpSequential(url: string, bodies: readonly GenerateBody[]): Promise<Throughput> {
  const started = performance.now()
  let tokens = 0
  for (const b of bodies) tokens += await generate(url, b)
  return { tokens, seconds: (performance.now() - started) / 1000 }
}
