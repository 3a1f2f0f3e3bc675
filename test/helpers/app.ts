/**
 * Builds a real prefixd app (real engine worker, real model) for HTTP tests,
 * and closes it when the test ends.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/load-config.js'
import type { Config } from '../../src/config/schema.js'

export interface TestLike {
  teardown(fn: () => unknown): void
}

/**
 * An empty PREFIX_DIR removed when the test ends. The default, `prefixes`
 * relative to the working directory, is the repository's own folder (with
 * its example prefixes) when tests run: no test may write a store there.
 */
export function scratchPrefixDir(t: TestLike): string {
  const dir = mkdtempSync(join(tmpdir(), 'prefixd-prefixes-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export async function startApp(t: TestLike, modelDir: string, config: Partial<Config> = {}): Promise<FastifyInstance> {
  const prefixDir = config.PREFIX_DIR ?? scratchPrefixDir(t)
  const app = await buildApp({
    config: loadConfig({}, { LOG_LEVEL: 'silent', INTRA_OP_THREADS: 1, ...config, PREFIX_DIR: prefixDir }),
    modelDir,
    logger: false,
  })
  t.teardown(() => app.close())
  await app.ready()
  return app
}

/** Listens on a free loopback port; resolves to the base URL ("http://127.0.0.1:PORT"). */
export async function listenOnLoopback(app: FastifyInstance): Promise<string> {
  return app.listen({ host: '127.0.0.1', port: 0 })
}

export interface GenerateReply {
  generated_text: string
  details?: {
    finish_reason: string
    generated_tokens: number
    seed: number | null
    prefix_id: string[] | null
    tokens: Array<{ id: number; text: string; logprob: number; special: boolean }>
  }
}
