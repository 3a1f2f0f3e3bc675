/**
 * Upload → servable: from sending POST /prefixes on replica A until a
 * /generate naming the new id (1 new token) first answers 200 on A itself and
 * on replica B, which shares A's Redis but not its disk. Also the same on a
 * single replica with the embedded index. The tiny generated llama serves
 * (a forward pass is ~1 ms): the numbers are the store's, not the model's.
 * In-process HTTP (app.inject): no sockets.
 */
import type { FastifyInstance } from 'fastify'
import { join } from 'node:path'
import { startApp } from '../test/helpers/app.js'
import { buildPeftAdapter } from '../test/helpers/prefix-fixtures.js'
import { uploadForm } from '../test/helpers/prefix-upload.js'
import { generatedModel } from '../test/helpers/tiny-model.js'
import { summary, type Teardowns } from './store-shared.js'

async function servable(app: FastifyInstance, id: string): Promise<void> {
  for (;;) {
    const res = await app.inject({ method: 'POST', url: '/generate', payload: { inputs: 'Once', parameters: { prefix_id: id, max_new_tokens: 1 } } })
    if (res.statusCode === 200) return
    if (res.statusCode !== 404) throw new Error(`generate answered ${res.statusCode}: ${res.body}`)
  }
}

async function measure(a: FastifyInstance, b: FastifyInstance | null, runs: number, tag: string) {
  const post: number[] = []
  const onA: number[] = []
  const onB: number[] = []
  for (let i = 0; i < runs; i++) {
    const f = buildPeftAdapter({ layers: 2, kvHeads: 2, headDim: 16, P: 16, seed: i })
    const form = uploadForm({ 'adapter_config.json': f.configJson, 'adapter_model.safetensors': f.safetensors }, { id: `${tag}-${i}` })
    const started = performance.now()
    const res = await a.inject({ method: 'POST', url: '/prefixes', payload: form })
    if (res.statusCode !== 201) throw new Error(`upload answered ${res.statusCode}: ${res.body}`)
    post.push(performance.now() - started)
    await Promise.all([
      servable(a, `${tag}-${i}`).then(() => onA.push(performance.now() - started)),
      b && servable(b, `${tag}-${i}`).then(() => onB.push(performance.now() - started)),
    ])
  }
  return { post, onA, onB }
}

export async function uploadLatency(opts: { dir: string; redisUrl: string; runs: number; t: Teardowns }): Promise<string[]> {
  const modelDir = await generatedModel('llama')
  const base = { LOG_LEVEL: 'silent' as const, INTRA_OP_THREADS: 1 }
  const [a, b, solo] = await Promise.all([
    startApp(opts.t, modelDir, { ...base, PREFIX_DIR: join(opts.dir, 'up-a'), REDIS_URL: opts.redisUrl }),
    startApp(opts.t, modelDir, { ...base, PREFIX_DIR: join(opts.dir, 'up-b'), REDIS_URL: opts.redisUrl }),
    startApp(opts.t, modelDir, { ...base, PREFIX_DIR: join(opts.dir, 'up-solo') }),
  ])
  await measure(a, b, 5, 'warm') // first-call costs (script loading, JIT) out of the numbers
  await measure(solo, null, 5, 'warm')
  const redis = await measure(a, b, opts.runs, 'r')
  const embedded = await measure(solo, null, opts.runs, 'e')
  return [
    `Upload → servable (tiny llama, 16-token PEFT adapter, ${opts.runs} uploads each), milliseconds from sending the POST, median / p99:`,
    '',
    '| setup | POST answered 201 | first 200 /generate on the same replica | first 200 /generate on the other replica |',
    '|---|---|---|---|',
    `| Redis, two replicas | ${summary(redis.post)} | ${summary(redis.onA)} | ${summary(redis.onB)} |`,
    `| embedded index, one replica | ${summary(embedded.post)} | ${summary(embedded.onA)} | — |`,
  ]
}
