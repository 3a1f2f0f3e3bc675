/**
 * What happens around generation: a configuration error stops the start with
 * a message naming the variable; a dead engine worker makes the server
 * not-ready, fails requests with 503, and ends the process non-zero.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { Worker } from 'node:worker_threads'
import { scratchPrefixDir, startApp, type TestLike } from '../helpers/app.js'
import { generatedModel } from '../helpers/tiny-model.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const tsLoader = fileURLToPath(new URL('../../node_modules/@tapjs/typescript/dist/esm/import.mjs', import.meta.url))
const modelDir = await generatedModel('llama')

function runNode(t: TestLike, args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', tsLoader, ...args], {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: 'silent', HOST: '127.0.0.1', PORT: '0', PREFIX_DIR: scratchPrefixDir(t), ...env },
    })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, out })
    })
  })
}

t.test('a bad configuration value stops the start and names the variable', async (t) => {
  const r = await runNode(t, ['src/cli.ts', 'serve'], { MODEL_DIR: modelDir, MAX_BATCH_SIZE: 'lots' })
  t.not(r.code, 0)
  t.match(r.out, /MAX_BATCH_SIZE must be integer/)
  const p = await runNode(t, ['src/cli.ts', 'serve'], { MODEL_DIR: modelDir, EXECUTION_PROVIDER: 'tpu' })
  t.not(p.code, 0)
  t.match(p.out, /EXECUTION_PROVIDER must be one of cpu, cuda/)
})

t.test('a model folder that is not a model is refused with a clear message', async (t) => {
  const r = await runNode(t, ['src/cli.ts', 'serve'], { MODEL_DIR: root })
  t.not(r.code, 0)
  t.match(r.out, /config\.json/)
})

t.test('when the engine worker dies, the process exits non-zero by itself', async (t) => {
  const r = await runNode(t, ['test/fixtures/serve-then-kill-engine.ts'], { MODEL_DIR: modelDir })
  t.match(r.out, /listening/)
  t.equal(r.code, 1)
})

t.test('a dead engine: /ready and /generate answer 503 with the reason', async (t) => {
  const app = await startApp(t, modelDir)
  t.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 200)
  const died = new Promise((resolve) => app.engine.once('died', resolve))
  await (app.engine as unknown as { worker: Worker }).worker.terminate()
  await died
  const ready = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(ready.statusCode, 503)
  t.match(ready.json().error, /engine stopped/)
  const gen = await app.inject({ method: 'POST', url: '/generate', payload: { inputs: 'hello' } })
  t.equal(gen.statusCode, 503)
  t.equal(gen.json().error_type, 'unavailable')
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200, 'the process still lives until it exits')
})

t.test('a port already in use: one line, exit 1, the engine worker stopped', async (t) => {
  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => taken.close())
  const port = (taken.address() as { port: number }).port
  const r = await runNode(t, ['src/cli.ts', 'serve'], { MODEL_DIR: modelDir, PORT: String(port) })
  t.equal(r.code, 1, 'exits 1 (a process that stays alive is killed after 60 s: code null)')
  t.match(r.out, new RegExp(`^prefixd: cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use \\(EADDRINUSE\\)`, 'm'))
})
