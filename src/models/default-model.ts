/**
 * The model a first start serves when MODEL_DIR is not set: a tiny random
 * Llama generated once into CACHE_DIR (never committed), so `npm start` works
 * on a fresh machine with nothing downloaded.
 */
import { access, mkdir, mkdtemp, rename, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { Config } from '../config/schema.js'
import { generateModel } from './generate/index.js'

const DEFAULT_MODEL = { arch: 'llama', size: 'tiny' } as const

export async function resolveModelDir(config: Config, log: (msg: string) => void = () => {}): Promise<string> {
  if (config.MODEL_DIR) return resolve(config.MODEL_DIR)
  const dir = resolve(config.CACHE_DIR, 'models', `${DEFAULT_MODEL.arch}-${DEFAULT_MODEL.size}`)
  try {
    await access(join(dir, 'config.json'))
    return dir
  } catch {
    // not generated yet
  }
  log(`MODEL_DIR is not set: generating a tiny ${DEFAULT_MODEL.arch} model into ${dir}`)
  // Generate beside the target and rename, so an interrupted start never
  // leaves a half-written model that later starts would take as complete.
  const parent = resolve(config.CACHE_DIR, 'models')
  await mkdir(parent, { recursive: true })
  const tmp = await mkdtemp(join(parent, '.generating-'))
  try {
    await generateModel({ ...DEFAULT_MODEL, out: tmp })
    await rename(tmp, dir)
  } catch (err) {
    await rm(tmp, { recursive: true, force: true })
    throw err
  }
  return dir
}
