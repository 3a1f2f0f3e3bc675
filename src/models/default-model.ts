/**
 * The model `prefixd serve` runs when MODEL_DIR is not set: stories260K, a
 * real 260K-parameter Llama shipped in the repository (src/models/stories260K,
 * see its README), so a first start on a fresh clone writes real text with
 * nothing downloaded or generated. The random-weight generator stays for
 * benchmarks and tests that need other shapes.
 */
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Config } from '../config/schema.js'

/**
 * Resolved from the package root, not from this file's folder: compiled, this
 * module runs from dist/models/, and tsc copies no data files, so the model is
 * read where it is committed (the Docker image copies it to the same place).
 */
export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../src/models/stories260K/', import.meta.url))

export function resolveModelDir(config: Pick<Config, 'MODEL_DIR'>): string {
  return config.MODEL_DIR ? resolve(config.MODEL_DIR) : DEFAULT_MODEL_DIR
}
