/**
 * The `prefixd` command line against a real server that requires API keys:
 * prefix upload/list/show/rm in-process (output captured) and through the
 * real entry point in a child process, their exit codes (0 done, 1 refused,
 * 2 usage), upload progress, and the bench command's own checks. The same
 * server checks the OpenAI routes' 401 in OpenAI's shape.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import OpenAI from 'openai'
import { hashKey } from '../../src/auth/api-keys.js'
import { runBench } from '../../src/cli/bench-command.js'
import type { CliIO } from '../../src/cli/io.js'
import { runPrefix } from '../../src/cli/prefix-command.js'
import { startApp } from '../helpers/app.js'
import { freePort } from '../helpers/free-port.js'
import { completionTexts } from '../helpers/completion-text.js'
import { readExpected, storiesModelDir, storiesPrefixesDir } from '../helpers/shared-data.js'

const dogDir = join(storiesPrefixesDir, 'dog-max')
const robotDir = join(storiesPrefixesDir, 'robot-benny')
const KEY = 'pfx_cli-test-key'
const prefixDir = mkdtempSync(join(tmpdir(), 'prefixd-cli-'))
t.teardown(() => rmSync(prefixDir, { recursive: true, force: true }))
const app = await startApp(t, storiesModelDir, { PREFIX_DIR: prefixDir, API_KEYS: `ops:admin:${hashKey(KEY)}` })
await app.listen({ host: '127.0.0.1', port: 0 })
const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

async function cli(args: string[], opts: { env?: Record<string, string>; tty?: boolean } = {}) {
  let out = ''
  let err = ''
  const io: CliIO = { env: opts.env ?? {}, out: (s) => void (out += s), err: (s) => void (err += s), errIsTTY: opts.tty ?? false }
  const code = await runPrefix(args, io)
  return { code, out, err }
}
const auth = ['--url', url, '--api-key', KEY]

t.test('upload, list, show, replace, rm', async (t) => {
  const up = await cli(['upload', 'dog', dogDir, '--description', 'a dog named Max', ...auth])
  t.equal(up.code, 0, up.err)
  t.match(up.out, /^uploaded dog version 1 \(8 tokens, sha256 [0-9a-f]{12}\)/)
  t.match(up.err, /uploading 100% \(0\.0 MB of 0\.0 MB\)/, 'progress on stderr')

  const again = await cli(['upload', 'dog', join(robotDir, 'adapter_config.json'), join(robotDir, 'adapter_model.safetensors'), ...auth])
  t.equal(again.code, 1, 'an id that exists is refused')
  t.match(again.err, /409 conflict: prefix 'dog' exists/)

  const replaced = await cli(['upload', 'dog', robotDir, '--replace', '--json', ...auth], { tty: true })
  t.equal(replaced.code, 0, replaced.err)
  t.match(JSON.parse(replaced.out), { id: 'dog', version: 2 })
  t.equal(replaced.err, '', '--json prints no progress')
  const tty = await cli(['upload', 'robot', robotDir, ...auth], { tty: true })
  t.match(tty.err, /\ruploading 100%.*\n$/, 'a terminal gets one redrawn line')

  // The URL and key from the environment.
  const env = { PREFIXD_URL: url, PREFIXD_API_KEY: KEY }
  const list = await cli(['list', '--json'], { env })
  t.equal(list.code, 0, list.err)
  t.same((JSON.parse(list.out) as Array<{ id: string }>).map((r) => r.id), ['dog', 'robot'])
  const table = await cli(['list'], { env })
  t.match(table.out, /^ID\s+KIND\s+VERSION\s+TOKENS\s+SHAPE\s+BYTES\s+UPDATED\s+DESCRIPTION\ndog\s+prefix\s+2\s+\d+\s+5x4x8\s/)
  const show = await cli(['show', 'robot', '--json'], { env })
  t.match(JSON.parse(show.out), { id: 'robot', num_layers: 5, format: 'peft' })
  const human = await cli(['show', 'dog'], { env })
  t.match(human.out, /^id:\s+dog\nkind:\s+prefix\nversion:\s+2\n/)

  t.match(await cli(['rm', 'robot'], { env }), { code: 0, out: 'deleted robot\n' })
  t.match(await cli(['show', 'robot'], { env }), { code: 1, err: /404 not_found: prefix 'robot' not found/ })
  t.match(await cli(['rm', 'robot'], { env }), { code: 1 })
  t.match(await cli(['list'], { env: { PREFIXD_URL: url } }), { code: 1, err: /401/ }, 'no key: refused')
})

t.test('usage errors exit 2, help exits 0, an unreachable server exits 1', async (t) => {
  t.match(await cli(['--help']), { code: 0, out: /Usage: prefixd prefix <command>/ })
  t.match(await cli([]), { code: 2, err: /missing command/ })
  t.match(await cli(['frobnicate']), { code: 2, err: /unknown command 'frobnicate'/ })
  t.match(await cli(['list', '--colour']), { code: 2, err: /Unknown option '--colour'/ })
  t.match(await cli(['show']), { code: 2, err: /show takes one prefix id/ })
  t.match(await cli(['upload', 'x']), { code: 2, err: /at least one file/ })
  t.match(await cli(['upload', 'x', '/no/such/path', ...auth]), { code: 2, err: /no such file or folder/ })
  t.match(await cli(['upload', 'x', prefixDir, ...auth]), { code: 2, err: /holds no adapter_config.json/ })
  const closed = await freePort()
  t.match(await cli(['list', '--url', `http://127.0.0.1:${closed}`]), { code: 1, err: /cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/ })
})

t.test('the prefixd binary dispatches, with exit codes a script can trust', async (t) => {
  const run = promisify(execFile)
  const loader = join(process.cwd(), 'node_modules/@tapjs/typescript/dist/esm/import.mjs')
  const prefixd = (args: string[]) =>
    run(process.execPath, ['--import', loader, 'src/cli.ts', ...args], { env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', PREFIXD_URL: url, PREFIXD_API_KEY: KEY } })
      .then((r) => ({ code: 0, ...r }))
      .catch((e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }))
  const list = await prefixd(['prefix', 'list', '--json'])
  t.equal(list.code, 0, list.stderr)
  t.same((JSON.parse(list.stdout) as Array<{ id: string }>).map((r) => r.id), ['dog'])
  const bad = await prefixd(['prefix', 'show', 'nope'])
  t.equal(bad.code, 1)
  const usage = await prefixd(['prefix', 'upload'])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /Usage: prefixd prefix/)
})

t.test('bench: help, and a clear refusal outside a source checkout', async (t) => {
  let out = ''
  let err = ''
  const io: CliIO = { env: {}, out: (s) => void (out += s), err: (s) => void (err += s), errIsTTY: false }
  t.equal(await runBench(['--help'], io), 0)
  t.match(out, /Usage: prefixd bench/)
  const elsewhere = mkdtempSync(join(tmpdir(), 'prefixd-no-bench-'))
  t.teardown(() => rmSync(elsewhere, { recursive: true, force: true }))
  t.equal(await runBench(['--rounds', '1'], io, `${elsewhere}/`), 1)
  t.match(err, /needs a source checkout with dev dependencies/)
  // A real run takes minutes; an option the harness refuses ends at once, and exits 1.
  t.equal(await runBench(['--no-such-option'], { ...io, err: () => {} }), 1)
})

t.test('the OpenAI routes behind API keys: 401 in OpenAI shape, the key lets the client through', async (t) => {
  const dog = readExpected(join(dogDir, 'expected.json')).cases[0]
  const anonymous = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'wrong', maxRetries: 0 })
  await t.rejects(anonymous.models.list(), { status: 401 } as unknown as Error)
  const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.match(await res.json(), { error: { type: 'authentication_error', message: /API key is required/ } })
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY, maxRetries: 0 })
  // dog now holds robot-benny's adapter, replaced above: compare with dog-max via a fresh upload.
  t.equal(await cli(['upload', 'dog-max', dogDir, '--quiet', ...auth]).then((r) => r.code), 0)
  const r = await client.completions.create({ model: 'dog-max', prompt: dog.prompt, max_tokens: dog.generated_ids.length, temperature: 0 })
  t.equal(r.choices[0].text, (await completionTexts(storiesModelDir))(dog))
})
