/**
 * The Python references (bench/python/*.py), each a long-lived child process
 * that loads its model once and runs the workload once per "run" line: the
 * same model file through onnxruntime's Python API (the runtime's own best
 * path), and transformers + PEFT (what users would pick instead). Used when the
 * interpreter given (--python, default python3) imports what the script needs;
 * otherwise the bench says it skipped them.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface, type Interface } from 'node:readline'
import type { PrefixKV } from '../src/domain/prefix-kv.js'
import type { Throughput } from './engine-batch.js'

const SCRIPTS = new URL('./python/', import.meta.url)

/** Whether `python` can import every module listed. */
export function pythonHas(python: string, modules: readonly string[]): boolean {
  const r = spawnSync(python, ['-c', modules.map((m) => `import ${m}`).join('; ')], { stdio: 'ignore' })
  return r.status === 0
}

export interface PythonWorkload {
  modelDir: string
  modelFile: string
  threads: number
  prompts: number[][]
  prefixes: PrefixKV[]
  newTokens: number
}

/**
 * Writes the workload for the scripts: a JSON of shapes and prompts, and the
 * prefixes as one float32 file (per row, per layer: keys then values, each
 * [kv_heads, virtual tokens, head_dim], the layout PrefixKV holds).
 */
export async function writePythonWorkload(dir: string, w: PythonWorkload): Promise<string> {
  const p = w.prefixes[0]
  const parts: Float32Array[] = []
  for (const prefix of w.prefixes) {
    for (let layer = 0; layer < prefix.numLayers; layer++) parts.push(prefix.keys[layer], prefix.values[layer])
  }
  const bytes = new Uint8Array(parts.reduce((n, a) => n + a.byteLength, 0))
  let at = 0
  for (const a of parts) {
    bytes.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), at)
    at += a.byteLength
  }
  const prefixFile = join(dir, 'prefixes.f32')
  await writeFile(prefixFile, bytes)
  const file = join(dir, 'workload.json')
  await writeFile(
    file,
    JSON.stringify({
      modelDir: w.modelDir,
      modelFile: w.modelFile,
      threads: w.threads,
      prompts: w.prompts,
      newTokens: w.newTokens,
      prefixTokens: p.numVirtualTokens,
      numLayers: p.numLayers,
      numKvHeads: p.numKvHeads,
      headDim: p.headDim,
      prefixFile,
    }),
  )
  return file
}

export class PythonReference {
  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly lines: Interface,
    private readonly iterator: AsyncIterator<string>,
  ) {}

  /** Starts `script` (a file in bench/python/) with the workload file and any extra arguments; resolves once it printed "ready". */
  static async start(python: string, script: string, args: readonly string[]): Promise<PythonReference> {
    const child = spawn(python, [new URL(script, SCRIPTS).pathname, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000)
    })
    const lines = createInterface({ input: child.stdout })
    const iterator = lines[Symbol.asyncIterator]()
    const first = await iterator.next()
    if (first.done || first.value !== 'ready') {
      child.kill()
      throw new Error(`${script} did not start: ${stderr}`)
    }
    return new PythonReference(child, lines, iterator)
  }

  async run(): Promise<Throughput> {
    this.child.stdin.write('run\n')
    const line = await this.iterator.next()
    if (line.done) throw new Error('python reference exited')
    return JSON.parse(line.value) as Throughput
  }

  close(): void {
    this.lines.close()
    this.child.stdin.end()
  }
}
