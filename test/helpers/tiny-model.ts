/**
 * Generated test models, made once per machine into the temp folder (they are
 * deterministic, so a cached copy is the same model) and shared by test files.
 */
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateModel, type ModelLayout } from '../../src/models/generate/index.js'

/** The folder name's suffix for a layout: '' for the plain float32 model.onnx. */
function layoutTag(layout: ModelLayout): string {
  return [layout.dtype === 'float16' ? 'f16' : '', layout.externalData ? 'ext' : '', layout.merged ? 'merged' : ''].filter(Boolean).map((x) => `-${x}`).join('')
}

export async function generatedModel(arch: 'llama' | 'gpt2', size: 'tiny' | '15m' = 'tiny', layout: ModelLayout = {}): Promise<string> {
  const root = join(tmpdir(), 'prefixd-test-models')
  const dir = join(root, `${arch}-${size}-seed0${layoutTag(layout)}`)
  if (existsSync(join(dir, 'config.json'))) return dir
  mkdirSync(root, { recursive: true })
  const tmp = mkdtempSync(join(root, '.gen-'))
  await generateModel({ arch, size, out: tmp, layout })
  try {
    renameSync(tmp, dir)
  } catch {
    // Another test file generated it first: theirs is identical.
    rmSync(tmp, { recursive: true, force: true })
  }
  return dir
}
