/**
 * /health latency while clients send maximum-size prompts back to back
 * (issue 11, item 3): the same server, the same probe, side by side in one
 * run: idle, then under N clients each sending MAX_INPUT_CHARS-character
 * prompts (all refused 422 for their length, after tokenizing) one after
 * another. Prints a markdown section for bench/RESULTS.md.
 * Options: --seconds S per variant (default 10), --clients N (default 2).
 */
import { request } from 'undici'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config/load-config.js'
import { machineInfo } from './machine.js'
import { fmt } from './stats.js'
import { ensureModel } from './workload.js'

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 ? Number(process.argv[at + 1]) : fallback
}

const seconds = option('seconds', 10)
const clients = option('clients', 2)
const PROBE_EVERY_MS = 10

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/** Probes /health every PROBE_EVERY_MS for `ms`; each probe's latency in ms. */
async function probe(base: string, ms: number): Promise<number[]> {
  const out: number[] = []
  const end = performance.now() + ms
  while (performance.now() < end) {
    const t0 = performance.now()
    const res = await request(`${base}/health`)
    await res.body.dump()
    if (res.statusCode !== 200) throw new Error(`/health answered ${res.statusCode}`)
    out.push(performance.now() - t0)
    await new Promise((r) => setTimeout(r, PROBE_EVERY_MS))
  }
  return out.sort((a, b) => a - b)
}

const modelDir = await ensureModel('.cache/bench', (m) => process.stderr.write(`${m}\n`))
const config = loadConfig({}, { LOG_LEVEL: 'silent', INTRA_OP_THREADS: 1 })
const app = await buildApp({ config, modelDir, logger: false })
const base = await app.listen({ host: '127.0.0.1', port: 0 })
const prompt = 'Once upon a time there was a little dog who liked to run in the park. '.repeat(1000).slice(0, config.MAX_INPUT_CHARS)
try {
  process.stderr.write('idle…\n')
  const idle = await probe(base, seconds * 1000)
  process.stderr.write(`${clients} clients sending ${prompt.length}-character prompts…\n`)
  let stop = false
  let sent = 0
  const statuses = new Map<number, number>()
  const attackers = Array.from({ length: clients }, async () => {
    while (!stop) {
      const res = await request(`${base}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: prompt }) })
      await res.body.dump()
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
      sent++
    }
  })
  const loaded = await probe(base, seconds * 1000)
  stop = true
  await Promise.all(attackers)
  const m = machineInfo()
  const row = (name: string, s: number[]) =>
    `| ${name} | ${s.length} | ${fmt(percentile(s, 50), 1)} | ${fmt(percentile(s, 99), 1)} | ${fmt(s[s.length - 1], 1)} |`
  const lines = [
    `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${m.nproc} × ${m.cpuModel} (load ${m.loadAverage}), Node ${m.node}; model: the bench's 15m llama (32,000-token vocabulary); ${seconds} s per variant, /health probed every ${PROBE_EVERY_MS} ms.`,
    '',
    '| variant | probes | /health p50 ms | p99 ms | max ms |',
    '|---|---|---|---|---|',
    row('idle', idle),
    row(`${clients} clients, ${prompt.length}-character prompts back to back`, loaded),
    '',
    `Prompts sent meanwhile: ${sent} (${[...statuses].map(([s, n]) => `${n} × ${s}`).join(', ')}). Ratio p99 loaded / idle: ${fmt(percentile(loaded, 99) / percentile(idle, 99), 2)}.`,
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
} finally {
  await app.close()
}
