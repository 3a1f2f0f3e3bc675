/**
 * Paths to the shared test data (the real stories260K model and its PEFT
 * adapters). They sit beside the repository, here and in CI, and are never
 * copied into it.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const sharedDir = fileURLToPath(new URL('../../../shared/', import.meta.url))
export const storiesModelDir = fileURLToPath(new URL('../../../shared/models/stories260K/', import.meta.url))
export const storiesPrefixesDir = fileURLToPath(new URL('../../../shared/prefixes/stories260K/', import.meta.url))

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
