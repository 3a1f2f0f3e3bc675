/**
 * The prompt-learning adapters of stories260K copied into test/fixtures
 * (PROMPT_TUNING pt-cat-luna, P_TUNING ptune-king-leo) with PEFT's own greedy
 * outputs, read through the same folder loader the server uses.
 */
import { join } from 'node:path'
import type { AdapterContribution } from '../../src/domain/adapter-contribution.js'
import { loadPrefixFolder } from '../../src/prefixes/prefix-folder.js'
import { readExpected, sharedDir, type ExpectedFile } from './shared-data.js'

export const promptAdaptersDir = join(sharedDir, 'adapters', 'stories260K')
export const PROMPT_ADAPTERS = ['pt-cat-luna', 'ptune-king-leo'] as const

export async function loadPromptAdapter(name: string): Promise<{ contribution: AdapterContribution; kind: string; expected: ExpectedFile }> {
  const loaded = await loadPrefixFolder(join(promptAdaptersDir, name), { maxFileBytes: 1 << 20 })
  return { contribution: loaded.contribution, kind: loaded.kind, expected: readExpected(join(promptAdaptersDir, name, 'expected.json')) }
}
