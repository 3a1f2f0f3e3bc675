/**
 * Where the tests find the real test data, all inside the repository (a clone
 * stands alone): the stories260K model the server ships as its default
 * (src/models/stories260K), the two PEFT prefixes it ships as examples
 * (prefixes/dog-max, prefixes/robot-benny, each with PEFT's own expected
 * outputs in expected.json), and test-only data under test/fixtures/, laid out
 * like the shared data set it was copied from (see test/fixtures/README.md).
 */
import { readFileSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { scratchPrefixDir, type TestLike } from './app.js'

/** test/fixtures/: copies of shared test data, mirroring its layout (models/, adapters/, zoo/, ...). */
export const sharedDir = fileURLToPath(new URL('../fixtures/', import.meta.url))
export const storiesModelDir = fileURLToPath(new URL('../../src/models/stories260K/', import.meta.url))
/** The repository's prefixes/ folder: read it, never serve it as a PREFIX_DIR (the store writes .store/ there); use storiesPrefixStore. */
export const storiesPrefixesDir = fileURLToPath(new URL('../../prefixes/', import.meta.url))
export const STORIES_PREFIX_IDS = ['dog-max', 'robot-benny'] as const

/**
 * A fresh PREFIX_DIR holding links to the two shipped prefixes, removed when
 * the test ends, so a server under test registers them as folder prefixes
 * without writing its store into the repository.
 */
export function storiesPrefixStore(t: TestLike): string {
  const store = scratchPrefixDir(t)
  for (const id of STORIES_PREFIX_IDS) symlinkSync(join(storiesPrefixesDir, id), join(store, id))
  return store
}

export interface ExpectedCase {
  prompt: string
  prompt_ids: number[]
  generated_ids: number[]
  generated_text: string
}

export interface ExpectedFile {
  cases: ExpectedCase[]
  last_prompt_position_logits: { prompt: string; prompt_ids: number[]; position: number; argmax: number; values: number[] }
}

export function readExpected(path: string): ExpectedFile {
  return JSON.parse(readFileSync(path, 'utf8')) as ExpectedFile
}
