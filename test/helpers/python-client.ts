/**
 * Hugging Face's own Python client for tests: huggingface_hub, pinned, in a
 * virtual environment under the repository's .cache/ (git-ignored), made on
 * first use and reused after. Needs python3 with venv and pip, and a package
 * index pip can reach (PyPI, or whatever index pip is configured with).
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)

export const HF_HUB_VERSION = '2.0.0'
const cacheDir = fileURLToPath(new URL('../../.cache/', import.meta.url))
const venvDir = join(cacheDir, `python-huggingface_hub-${HF_HUB_VERSION}`)
const python = join(venvDir, 'bin', 'python')

/** The venv's python, installing huggingface_hub first if needed; throws one line saying why it cannot. */
export async function huggingfaceHubPython(): Promise<string> {
  // Written last: a venv without it is a broken earlier install and is made again.
  const done = join(venvDir, 'installed')
  if (existsSync(done)) return python
  rmSync(venvDir, { recursive: true, force: true })
  mkdirSync(cacheDir, { recursive: true })
  try {
    await run('python3', ['-m', 'venv', venvDir])
    // Few retries: an index that cannot be reached should fail the setup quickly, not after minutes.
    await run(python, ['-m', 'pip', 'install', '--quiet', '--retries', '1', '--timeout', '30', `huggingface_hub==${HF_HUB_VERSION}`], {
      maxBuffer: 1 << 24,
    })
  } catch (err) {
    const e = err as { stderr?: string; message: string }
    const why = (e.stderr ?? e.message).trim().split('\n').filter((l) => !l.startsWith('WARNING')).at(-1) ?? e.message
    throw new Error(`cannot install huggingface_hub==${HF_HUB_VERSION} into .cache/ (needs python3 -m venv and a reachable pip index): ${why}`)
  }
  writeFileSync(done, `huggingface_hub==${HF_HUB_VERSION}\n`)
  return python
}

export type PythonResult = { ok: unknown } | { error: string; message: string }

/** Calls InferenceClient(base_url).text_generation(**kwargs) once per call, in order. */
export async function hfTextGeneration(baseUrl: string, apiKey: string | null, calls: object[]): Promise<PythonResult[]> {
  const py = await huggingfaceHubPython()
  const script = fileURLToPath(new URL('../python/hf_text_generation.py', import.meta.url))
  const child = execFile(py, [script], { maxBuffer: 1 << 24 })
  const out = new Promise<string>((resolve, reject) => {
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d: Buffer) => (stdout += d))
    child.stderr!.on('data', (d: Buffer) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`python exited ${code}: ${stderr.trim()}`))))
  })
  child.stdin!.end(JSON.stringify({ base_url: baseUrl, api_key: apiKey, calls }))
  return JSON.parse(await out) as PythonResult[]
}
