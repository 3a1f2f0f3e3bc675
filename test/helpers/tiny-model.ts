/**
 * Generated test models, made once per machine into the temp folder (they are
 * deterministic, so a cached copy is the same model) and shared by test files.
 */
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateModel } from '../../src/models/generate/index.js'

export async function generatedModel(arch: 'llama' | 'gpt2', size: 'tiny' | '15m' = 'tiny'): Promise<string> {
  const root = join(tmpdir(), 'prefixd-test-models')
  const dir = join(root, `${arch}-${size}-seed0`)
  if (existsSync(join(dir, 'config.json'))) return dir
  mkdirSync(root, { recursive: true })
  const tmp = mkdtempSync(join(root, '.gen-'))
  await generateModel({ arch, size, out: tmp })
  try {
    renameSync(tmp, dir)
  } catch {
    // Another test file generated it first: theirs is identical.
    rmSync(tmp, { recursive: true, force: true })
  }
  return dir
}
