/**
 * The prefix store benchmarks, one after another, against a real
 * redis-server started on a free port; prints the markdown section for
 * bench/RESULTS.md on stdout. Options: --runs N (latency samples, default
 * 200), --count N (registered prefixes, default 10000), --only-scale.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRedis } from '../test/helpers/redis-server.js'
import { machineInfo } from './machine.js'
import { coldLoad } from './store-cold-load.js'
import { scale } from './store-scale.js'
import { Teardowns } from './store-shared.js'
import { uploadLatency } from './store-upload-latency.js'

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 ? Number(process.argv[at + 1]) : fallback
}

const runs = option('runs', 200)
const only = process.argv.includes('--only-scale')
const count = option('count', 10_000)
const t = new Teardowns()
const dir = mkdtempSync(join(tmpdir(), 'prefixd-store-bench-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
try {
  const redis = await startRedis(t)
  const m = machineInfo()
  const out: string[] = [
    `Measured ${new Date().toISOString().slice(0, 10)} on ${m.nproc} × ${m.cpuModel} (load ${m.loadAverage}), Node ${m.node}, redis-server on localhost, local disk with fsync.`,
    '',
  ]
  if (!only) {
    process.stderr.write('cold load…\n')
    out.push(...(await coldLoad({ dir, redisUrl: redis.url, runs })), '')
    process.stderr.write('upload → servable…\n')
    out.push(...(await uploadLatency({ dir, redisUrl: redis.url, runs, t })), '')
  }
  process.stderr.write(`${count} prefixes…\n`)
  out.push(...(await scale({ dir, redisUrl: redis.url, count })))
  process.stdout.write(`${out.join('\n')}\n`)
} finally {
  await t.run()
}
