/**
 * Every shell example in README.md runs as written against a server started
 * the way `npm start` starts it: package.json's start script (the build, then
 * the built CLI) with the default configuration, in a scratch folder that
 * holds copies of the example prefixes, so the commands' relative paths
 * (prefixes/dog-max/...) resolve as they do in a clone and the repository's
 * prefixes/ is never written to. Only the port is substituted. Each command's
 * status and the shape of its answer are checked, never generated text (the
 * tokenizer's spacing may change): only that a prefix changes the output.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { freePort } from '../helpers/free-port.js'
import { curlJsonBody, shellBlocks, splitCommands } from '../helpers/readme-shell.js'
import { STORIES_PREFIX_IDS, storiesPrefixesDir } from '../helpers/shared-data.js'
import { parseEvents } from '../helpers/sse.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const readme = readFileSync(join(root, 'README.md'), 'utf8')

/** Commands that install, build, test or start: the test itself does what they do (the start script), or they are the test run. */
const NOT_RUN = new Set(['npm ci && npm start', 'npm ci && npm test', 'npm ci', 'npm test', 'npm run typecheck', 'npm run build', 'node dist/cli.js serve'])

const startScript = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start
const [buildStep, serveStep] = startScript.split('&&').map((s) => s.trim())
t.equal(buildStep, 'npm run build', 'npm start builds first')
t.ok(NOT_RUN.has(serveStep), `npm start serves with "${serveStep}", the README's serve command`)

// A scratch working folder as a clone would look to the examples: the built
// CLI (linked: Node follows the link, so the code still finds the shipped
// model beside it) and copies of the example prefixes as the default PREFIX_DIR.
const work = mkdtempSync(join(tmpdir(), 'prefixd-readme-'))
const curlHome = mkdtempSync(join(tmpdir(), 'prefixd-curlrc-'))
t.teardown(() => {
  rmSync(work, { recursive: true, force: true })
  rmSync(curlHome, { recursive: true, force: true })
})
execFileSync('bash', ['-c', buildStep], { cwd: root, stdio: 'ignore' })
symlinkSync(join(root, 'dist'), join(work, 'dist'))
for (const id of STORIES_PREFIX_IDS) cpSync(join(storiesPrefixesDir, id), join(work, 'prefixes', id), { recursive: true })
// curl reads $CURL_HOME/.curlrc: every curl line reports its status after its
// output, with the command itself left as the README has it.
writeFileSync(join(curlHome, '.curlrc'), 'write-out = "\\n@@HTTP %{http_code}\\n"\n')

const port = await freePort()
// Only what a shell has, plus the port: no configuration the README does not show.
const baseEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? work }
const server = spawn('bash', ['-c', `exec ${serveStep}`], { cwd: work, env: { ...baseEnv, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] })
let serverLog = ''
server.stdout.on('data', (d) => (serverLog += d))
server.stderr.on('data', (d) => (serverLog += d))
const serverExit = new Promise<number | null>((resolve) => server.on('exit', (code) => resolve(code)))
t.teardown(async () => {
  server.kill('SIGTERM')
  await serverExit
})

async function waitReady(): Promise<void> {
  let exited = false
  void serverExit.then(() => (exited = true))
  for (;;) {
    if (exited) throw new Error(`the server exited before it was ready:\n${serverLog}`)
    const ok = await fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.ok, () => false)
    if (ok) return
    await new Promise((r) => setTimeout(r, 100))
  }
}
await waitReady()

interface Ran {
  command: string
  rc: number
  out: string
  status?: number
}

/** Runs one block's commands in one bash (exports carry over, as in a terminal), each framed by markers. */
function runBlock(commands: string[]): Ran[] {
  const script = ['set -o pipefail']
  commands.forEach((c, i) => script.push(`printf '@@CMD ${i}\\n'`, c.replaceAll('localhost:8080', `localhost:${port}`), `printf '\\n@@RC ${i} %d\\n' $?`))
  const r = spawnSync('bash', ['-c', script.join('\n')], { cwd: work, env: { ...baseEnv, CURL_HOME: curlHome }, encoding: 'utf8' })
  return commands.map((command, i) => {
    const m = new RegExp(`@@CMD ${i}\\n([\\s\\S]*?)\\n@@RC ${i} (\\d+)\\n`).exec(r.stdout)
    if (!m) return { command, rc: -1, out: `no output framed for this command; stderr:\n${r.stderr}` }
    const http = /\n?@@HTTP (\d{3})\n?$/.exec(m[1])
    return http
      ? { command, rc: Number(m[2]), out: m[1].slice(0, http.index), status: Number(http[1]) }
      : { command, rc: Number(m[2]), out: m[1] }
  })
}

const commands = shellBlocks(readme).map(splitCommands)
const ran = commands.map((block) => block.filter((c) => !NOT_RUN.has(c))).map(runBlock).flat()
const generated: { inputs: string; prefix: unknown; text: string }[] = []
const uploaded: string[] = []

const json = (out: string) => JSON.parse(out) as Record<string, any>

function checkCurl(t: Test, r: Ran) {
  const path = /localhost:\d+(\/[^\s'"|]*)/.exec(r.command)?.[1] ?? ''
  t.equal(r.rc, 0, 'exits 0')
  if (r.command.includes('|')) {
    // Piped through a filter (grep): what it lets through is the answer.
    t.match(r.out, /prefixd_/, 'the filter finds metrics lines')
    for (const id of uploaded) if (r.command.includes(id)) t.match(r.out, `prefix="${id}"`, `the uploaded ${id} has its series`)
    return
  }
  if (path === '/generate') {
    t.equal(r.status, 200)
    const body = curlJsonBody(r.command) as { inputs: string; parameters?: Record<string, unknown> }
    const answer = json(r.out)
    t.type(answer.generated_text, 'string')
    t.ok(answer.generated_text.trim().length > 0, 'text was generated')
    if (body.parameters?.details) {
      t.equal(answer.details.tokens.length, answer.details.generated_tokens, 'details list every token')
      t.same(answer.details.prefix_id, [body.parameters.prefix_id], 'details name the prefix')
    }
    generated.push({ inputs: body.inputs, prefix: body.parameters?.prefix_id ?? null, text: answer.generated_text })
  } else if (path === '/generate_stream') {
    t.equal(r.status, 200)
    const events = parseEvents(r.out) as { token: { text: string }; generated_text: string | null }[]
    t.ok(events.length > 1, 'one event per token')
    const last = events[events.length - 1]
    t.equal(events.map((e) => e.token.text).join(''), last.generated_text, 'the token texts make up generated_text')
  } else if (path === '/v1/completions') {
    t.equal(r.status, 200)
    const answer = json(r.out)
    t.type(answer.choices[0].text, 'string')
    t.ok(answer.usage.completion_tokens > 0, 'tokens were generated')
  } else if (path === '/prefixes') {
    t.equal(r.status, 201, 'created')
    const id = /-F id=(\S+)/.exec(r.command)?.[1]
    const answer = json(r.out)
    t.equal(answer.id, id)
    t.equal(answer.format, 'peft')
    t.equal(answer.version, 1)
    if (id) uploaded.push(id)
  } else if (path === '/openapi.json') {
    t.equal(r.status, 200)
    const doc = json(r.out)
    t.match(doc.openapi, /^3\.1/)
    t.ok(doc.paths['/generate'], 'documents /generate')
  } else {
    t.fail(`no check for a README request to ${path}: add one to this test`)
  }
}

function checkCli(t: Test, r: Ran) {
  t.equal(r.rc, 0, `exits 0: ${r.out.slice(0, 200)}`)
  const args = r.command.replace(/^node dist\/cli\.js\s+/, '').split(/\s+/)
  const [group, action] = args
  if (group === 'keys') t.match(r.out, /pfx_/, 'prints a key')
  else if (group === 'model') t.ok(existsSync(join(work, args[args.indexOf('--out') + 1], 'model.onnx')), 'the model is written')
  else if (group === 'prefix' && action === 'show') t.equal(json(r.out).id, args[2], 'shows the prefix as JSON')
  else if (group === 'prefix' && action === 'list') for (const id of STORIES_PREFIX_IDS) t.match(r.out, id, `lists ${id}`)
  else if (group === 'prefix' && (action === 'upload' || action === 'rm')) t.pass(`${action} succeeded`)
  else t.fail(`no check for README command "${r.command}": add one to this test`)
}

for (const r of ran) {
  t.test(r.command.split('\n')[0], async (t) => {
    if (r.command.startsWith('curl ')) checkCurl(t, r)
    else if (r.command.startsWith('node dist/cli.js ')) checkCli(t, r)
    else if (r.command.startsWith('export ')) t.equal(r.rc, 0)
    else t.fail(`README command "${r.command}" is neither run nor listed as not run`)
  })
}

t.test('the examples cover the first five minutes', async (t) => {
  t.ok(ran.length >= 10, `${ran.length} README commands ran`)
  const pairs = generated.filter((g) => g.prefix !== null && generated.some((b) => b.inputs === g.inputs && b.prefix === null))
  t.ok(pairs.length > 0, 'the same prompt is generated with and without a prefix')
  for (const p of pairs) {
    const base = generated.find((b) => b.inputs === p.inputs && b.prefix === null)!
    t.not(p.text, base.text, `the prefix ${String(p.prefix)} changes the output`)
  }
  t.ok(uploaded.length > 0, 'a prefix is uploaded')
  t.ok(ran.some((r) => r.command.includes('/metrics') && uploaded.some((id) => r.command.includes(id))), 'and looked up in /metrics')
})
