/**
 * `prefixd bench [options]`: runs the benchmark harness (bench/run.ts, see
 * bench/README.md) from a source checkout. The harness is TypeScript run
 * through the test runner's loader, so it needs the dev dependencies; a
 * packaged install without them says so and exits 1.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { EXIT_FAILED, EXIT_OK, processIO, type CliIO } from './io.js'

export const BENCH_USAGE = `Usage: prefixd bench [--rounds N] [--cache-dir DIR]

Runs the benchmark of bench/README.md: its reference workload (16 requests,
each with its own prefix, on a generated 15M llama) through the engine, HTTP
and a bare ONNX Runtime loop, interleaved in rounds. Prints a markdown report
on stdout, progress on stderr, raw numbers in <cache-dir>/last.json.
Needs a source checkout with dev dependencies (npm ci).

Options:
  --rounds N        measured rounds (default 5)
  --cache-dir DIR   where the model and results go (default .cache/bench)
  -h, --help        show this help
`

/** The repository root: two levels above this file, in src/cli or dist/cli. */
const root = fileURLToPath(new URL('../../', import.meta.url))

export function benchPaths(repoRoot = root): { script: string; loader: string } {
  return {
    script: `${repoRoot}bench/run.ts`,
    loader: `${repoRoot}node_modules/@tapjs/typescript/dist/esm/import.mjs`,
  }
}

export async function runBench(argv: string[], io: CliIO = processIO, repoRoot = root): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(BENCH_USAGE)
    return EXIT_OK
  }
  const { script, loader } = benchPaths(repoRoot)
  if (!existsSync(script) || !existsSync(loader)) {
    io.err(`prefixd bench: needs a source checkout with dev dependencies (${script} and the TypeScript loader); run it from a clone after npm ci\n`)
    return EXIT_FAILED
  }
  // The harness parses its own options and refuses unknown ones.
  const child = spawn(process.execPath, ['--import', loader, script, ...argv], {
    cwd: repoRoot,
    stdio: 'inherit',
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' },
  })
  return new Promise((resolve) => child.on('close', (code) => resolve(code === 0 ? EXIT_OK : EXIT_FAILED)))
}
