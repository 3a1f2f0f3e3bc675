/**
 * The models the batching tests run on, each as a started engine with its
 * prefixes already sent: the generated tiny llama and gpt2 (random weights,
 * seeded random prefixes) and the real stories260K with its two real PEFT
 * adapters. Engine limits are small on purpose, so that mixes of a few
 * requests already queue, admit in several prefill passes and swap members.
 */
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EngineClient } from '../../src/engine/engine-client.js'
import type { EngineOptions } from '../../src/engine/protocol.js'
import { generateModel, type ModelArch } from '../../src/models/generate/index.js'
import { loadPrefixFolder } from '../../src/prefixes/prefix-folder.js'
import type { AdapterContribution } from '../../src/domain/adapter-contribution.js'
import type { PrefixKV } from '../../src/domain/prefix-kv.js'
import { storiesModelDir, storiesPrefixesDir } from './shared-data.js'
import { randomPrefix } from './reference-prefix.js'

export interface TestLike {
  teardown(fn: () => unknown): void
}

export const ENGINE_LIMITS = { maxBatchSize: 6, maxBatchTokens: 16384, maxPrefillTokens: 64, maxWaiting: 64 }

export function engineOptions(modelDir: string, limits: Partial<typeof ENGINE_LIMITS> = {}): EngineOptions {
  return { modelDir, executionProvider: 'cpu', intraOpThreads: 1, ...ENGINE_LIMITS, ...limits }
}

export interface ModelFixture {
  name: string
  engine: EngineClient
  modelDir: string
  /** Adapter key → its contribution, as sent to the engine. */
  prefixes: Map<string, AdapterContribution>
}

/** A temp folder removed when the test ends. */
export async function tempDir(t: TestLike, name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `prefixd-${name}-`))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

export async function generateTinyModel(dir: string, arch: ModelArch): Promise<string> {
  const out = join(dir, `${arch}-tiny`)
  await generateModel({ arch, size: 'tiny', out, seed: 7 })
  return out
}

/** A seeded random prefix for any model shape, unit-normal keys and values. */
export const seededPrefix = randomPrefix

export async function startFixture(
  t: TestLike,
  name: string,
  modelDir: string,
  prefixes: (spec: EngineClient['spec']) => Promise<Map<string, AdapterContribution>>,
  limits: Partial<typeof ENGINE_LIMITS> = {},
): Promise<ModelFixture> {
  const engine = await EngineClient.start(engineOptions(modelDir, limits))
  t.teardown(() => engine.close())
  const map = await prefixes(engine.spec)
  for (const [key, p] of map) engine.putAdapter(key, p)
  return { name, engine, modelDir, prefixes: map }
}

/** Random prefixes of several lengths (1 to 16 virtual tokens) for a generated model. */
export function randomPrefixes(lengths: readonly number[]) {
  return async (spec: EngineClient['spec']): Promise<Map<string, AdapterContribution>> =>
    new Map(lengths.map((len, i) => [`rand${len}`, pastKv(seededPrefix(spec, len, 1000 + i))]))
}

/** The real PEFT adapters of stories260K (P = 8 and 16), plus one random prefix of an odd length. */
export async function storiesPrefixes(spec: EngineClient['spec']): Promise<Map<string, AdapterContribution>> {
  const map = new Map<string, AdapterContribution>()
  for (const name of ['dog-max', 'robot-benny']) {
    map.set(name, (await loadPrefixFolder(join(storiesPrefixesDir, name), { maxFileBytes: 1 << 24 })).contribution)
  }
  map.set('rand5', pastKv(seededPrefix(spec, 5, 77)))
  return map
}

/**
 * stories260K never emits its EOS (`</s>`) in greedy text: llama2.c's training
 * data separates stories with BOS, not EOS. To test EOS on a real model, this
 * makes a model folder whose files link to the shared ones, with
 * generation_config.json's eos_token_id widened to [</s>, extraEos]; nothing
 * is copied.
 */
export async function storiesWithExtraEos(dir: string, extraEos: number): Promise<string> {
  const out = join(dir, 'stories-eos')
  await mkdir(out, { recursive: true })
  for (const f of ['model.onnx', 'config.json', 'tokenizer.json', 'tokenizer_config.json']) {
    await symlink(join(storiesModelDir, f), join(out, f))
  }
  const gen = JSON.parse(await readFile(join(storiesModelDir, 'generation_config.json'), 'utf8')) as Record<string, unknown>
  gen.eos_token_id = [gen.eos_token_id as number, extraEos]
  await writeFile(join(out, 'generation_config.json'), JSON.stringify(gen, null, 1))
  return out
}

/** The id of a token in stories260K's vocabulary, read from its tokenizer.json. */
export async function storiesTokenId(piece: string): Promise<number> {
  const json = JSON.parse(await readFile(join(storiesModelDir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } }
  const id = json.model.vocab[piece]
  if (id === undefined) throw new Error(`stories260K has no token ${JSON.stringify(piece)}`)
  return id
}

/** A prefix as the contribution the engine takes. */
export function pastKv(prefix: PrefixKV): AdapterContribution {
  return { kind: 'past_kv', prefix }
}
