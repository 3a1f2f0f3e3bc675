/**
 * The zoo of decoder families (test/fixtures/zoo): reading its expected ids,
 * serving a family over HTTP, and the per-family check the zoo tests share.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { startApp, type GenerateReply, type TestLike } from './app.js'
import { peftFolderFiles, upload } from './prefix-upload.js'

export const zoo = new URL('../fixtures/zoo/', import.meta.url).pathname

export interface ZooCase {
  prompt: string
  prompt_ids: number[]
  generated_ids: number[]
  top1_top2_margins: number[]
}

export interface ZooExpected {
  base: { cases: ZooCase[] }
  prefix: { error?: string | null; cases: ZooCase[] }
  config_kwargs?: Record<string, unknown>
}

export function expectedOf(family: string): ZooExpected {
  return JSON.parse(readFileSync(join(zoo, family, 'prefix', 'expected.json'), 'utf8')) as ZooExpected
}

export async function serve(t: TestLike, family: string): Promise<FastifyInstance> {
  const store = mkdtempSync(join(tmpdir(), `prefixd-zoo-${family}-`))
  t.teardown(() => rmSync(store, { recursive: true, force: true }))
  return startApp(t, join(zoo, family, 'model'), { PREFIX_DIR: store })
}

export async function generateIds(app: FastifyInstance, prompt: string, maxNewTokens: number, prefixId?: string): Promise<number[]> {
  const parameters: Record<string, unknown> = { max_new_tokens: maxNewTokens, details: true }
  if (prefixId !== undefined) parameters.prefix_id = prefixId
  const res = await app.inject({ method: 'POST', url: '/generate', payload: { inputs: prompt, parameters } })
  if (res.statusCode !== 200) throw new Error(`/generate answered ${res.statusCode}: ${res.body}`)
  return (res.json() as GenerateReply).details!.tokens.map((x) => x.id)
}

export async function info(app: FastifyInstance): Promise<Record<string, unknown>> {
  return (await app.inject({ method: 'GET', url: '/info' })).json() as Record<string, unknown>
}

export interface Job {
  label: string
  prompt: string
  want: number[]
  prefixId?: string
}

export function jobsOf(family: string, expected: ZooExpected, withPrefix: boolean): Job[] {
  const jobs: Job[] = expected.base.cases.map((c) => ({ label: `${family} base: ${c.prompt}`, prompt: c.prompt, want: c.generated_ids }))
  if (withPrefix) {
    for (const c of expected.prefix.cases) jobs.push({ label: `${family} PEFT: ${c.prompt}`, prompt: c.prompt, want: c.generated_ids, prefixId: family })
  }
  return jobs
}

/** What a float family's export needs from prefixd, checked in /info. */
export interface FamilyFacts {
  /** Whether prefixd must derive position_ids (the export computes them per column). */
  positions: boolean
  kvHeads: number
}

/**
 * One float family end to end: /info, the adapter uploaded through the API,
 * transformers' and PEFT's ids one request at a time, then all at once in one
 * batch (rows with and without the prefix, prompts of different lengths).
 */
export async function checkFloatFamily(t: Test, family: string, facts: FamilyFacts): Promise<void> {
  const expected = expectedOf(family)
  const app = await serve(t, family)
  const about = await info(app)
  // Other rewrites (inputs_embeds, for prompt adapters) may apply too; positions are this family's own need.
  const rewrites = about.graph_rewrites as string[]
  t.equal(rewrites.includes('position_ids'), facts.positions, `position_ids derived: ${facts.positions}`)
  t.equal(about.num_key_value_heads, facts.kvHeads)
  t.equal(about.batch_invariant, true)
  t.equal(about.prefixes_supported, true)

  const up = await upload(app, 'POST', '/prefixes', peftFolderFiles(join(zoo, family, 'prefix')), { id: family })
  t.equal(up.status, 201, `upload: ${JSON.stringify(up.body)}`)

  const jobs = jobsOf(family, expected, true)
  t.ok(jobs.length >= 6, 'three base and three PEFT cases')
  for (const j of jobs) t.same(await generateIds(app, j.prompt, j.want.length, j.prefixId), j.want, `alone: ${j.label}`)
  // Every request at once: rows with and without the prefix, prompts of different lengths, one batch.
  const together = await Promise.all(jobs.map((j) => generateIds(app, j.prompt, j.want.length, j.prefixId)))
  jobs.forEach((j, i) => t.same(together[i], j.want, `all at once: ${j.label}`))
}
