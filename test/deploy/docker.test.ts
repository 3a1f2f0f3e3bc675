/**
 * docker/ without a Docker engine: the Dockerfile linted by dockerfile-utils
 * and checked for its structure (stages, non-root user, exec-form CMD, no dev
 * dependencies at runtime, ONNX Runtime install mode), its HEALTHCHECK run
 * against a local server, the build context allowlist, and compose.yaml with
 * prometheus.yml parsed and cross-checked.
 */
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse as parseYaml } from 'yaml'
import { validate as lintDockerfile, ValidationSeverity, type ValidatorSettings } from 'dockerfile-utils'

type Obj = Record<string, any>

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const DOCKER_DIR = join(REPO_ROOT, 'docker')
const read = (...p: string[]) => readFileSync(join(REPO_ROOT, ...p), 'utf8')

// --- a small Dockerfile reader: enough for structural assertions ------------

interface Instruction {
  keyword: string
  args: string
  line: number
}

interface Stage {
  from: string
  name: string | undefined
  instructions: Instruction[]
}

/** Instructions with continuation lines joined and comments dropped. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = []
  let current: { text: string; line: number } | null = null
  text.split('\n').forEach((raw, i) => {
    const trimmed = raw.trim()
    if (trimmed.startsWith('#') || (trimmed === '' && current === null)) return
    const continued = trimmed.endsWith('\\')
    const piece = continued ? trimmed.slice(0, -1) : trimmed
    current = current ? { text: `${current.text} ${piece}`, line: current.line } : { text: piece, line: i + 1 }
    if (!continued) {
      const m = /^(\S+)\s*(.*)$/s.exec(current.text.trim())
      if (m) out.push({ keyword: m[1].toUpperCase(), args: m[2].replace(/\s+/g, ' ').trim(), line: current.line })
      current = null
    }
  })
  return out
}

function splitStages(instructions: Instruction[]): { globals: Instruction[]; stages: Stage[] } {
  const globals: Instruction[] = []
  const stages: Stage[] = []
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)
      stages.push({ from: m?.[1] ?? '', name: m?.[2], instructions: [] })
    } else if (stages.length === 0) globals.push(ins)
    else stages[stages.length - 1].instructions.push(ins)
  }
  return { globals, stages }
}

/** ARG defaults before the first FROM, with ${X} references resolved. */
function globalArgs(globals: Instruction[]): Record<string, string> {
  const args: Record<string, string> = {}
  for (const ins of globals.filter((g) => g.keyword === 'ARG')) {
    const [name, ...rest] = ins.args.split('=')
    args[name] = substitute(rest.join('='), args)
  }
  return args
}

function substitute(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a: string | undefined, b: string | undefined) => vars[(a ?? b) as string] ?? '')
}

/** KEY=value pairs of ENV instructions (values may be quoted). */
function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {}
  for (const ins of stage.instructions.filter((i) => i.keyword === 'ENV')) {
    for (const m of ins.args.matchAll(/(\w+)=("([^"]*)"|\S+)/g)) env[m[1]] = m[3] ?? m[2]
  }
  return env
}

const npmInstalls = (stage: Stage) =>
  stage.instructions.filter((i) => i.keyword === 'RUN' && /\b(npm (ci|install|i)\b|yarn|pnpm)/.test(i.args))

/** The JSON array of an exec-form instruction (after HEALTHCHECK's options and CMD), or undefined. */
const jsonArgs = (ins: Instruction | undefined): unknown => {
  try {
    return ins ? JSON.parse(ins.args.replace(/^(--\S+\s+)*CMD\s+/, '')) : undefined
  } catch {
    return undefined
  }
}

const dockerfileText = read('docker', 'Dockerfile')
const instructions = parseDockerfile(dockerfileText)
const { globals, stages } = splitStages(instructions)
const args = globalArgs(globals)
const final = stages[stages.length - 1]
const stageByName = (name: string) => stages.find((s) => s.name === name)

const compose = parseYaml(read('docker', 'compose.yaml')) as Obj
const composeCuda = parseYaml(read('docker', 'compose.cuda.yaml')) as Obj

// --- a health endpoint to run the healthcheck commands against ---------------

/** Runs a healthcheck's exec-form command (node -e ...) and returns its exit code. */
function runCheck(command: string[], env: Record<string, string>): Promise<number> {
  if (command[0] !== 'node') throw new Error(`healthcheck runs ${command[0]}, not node`)
  return new Promise((res) => {
    // A clean environment: tap's NODE_OPTIONS (its loaders) would slow every
    // start down, and a container has none of it either.
    execFile(process.execPath, command.slice(1), { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 10_000 }, (err) => {
      res(err ? (typeof err.code === 'number' ? err.code : 1) : 0)
    })
  })
}

async function statusServer(status: Record<string, number>): Promise<{ server: Server; port: number; hits: string[] }> {
  const hits: string[] = []
  const server = createServer((req, res) => {
    hits.push(req.url ?? '')
    res.statusCode = status[req.url ?? ''] ?? 404
    res.end()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { server, port: (server.address() as AddressInfo).port, hits }
}

/** A short-syntax volume "src:target[:mode]", with a ${VAR:-default} source taken as its default. */
function volumeParts(v: string): { source: string; target: string } {
  const [source, target] = v.replace(/^\$\{\w+:-([^}]*)\}/, '$1').split(':')
  return { source, target }
}

const close = (s: Server) => new Promise<void>((r) => s.close(() => r()))

// --- the Dockerfile --------------------------------------------------------------

t.test('dockerfile-utils finds no errors (all of its checks raised to error)', async (t) => {
  const strict: ValidatorSettings = {
    deprecatedMaintainer: ValidationSeverity.ERROR,
    directiveCasing: ValidationSeverity.ERROR,
    emptyContinuationLine: ValidationSeverity.ERROR,
    instructionCasing: ValidationSeverity.ERROR,
    instructionCmdMultiple: ValidationSeverity.ERROR,
    instructionEntrypointMultiple: ValidationSeverity.ERROR,
    instructionHealthcheckMultiple: ValidationSeverity.ERROR,
    instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
    instructionWorkdirRelative: ValidationSeverity.ERROR,
  }
  // LSP DiagnosticSeverity: 1 is Error.
  const errors = lintDockerfile(dockerfileText, strict).filter((d) => d.severity === 1)
  t.same(
    errors.map((d) => `line ${d.range.start.line + 1}: ${d.message}`),
    [],
    'no error diagnostics',
  )
  const broken = lintDockerfile('FROM node:20-slim AS a\nFROM node:20-slim AS a\nHEALTHCHECK --interval=soon CMD true\nUSER\n', strict)
  t.ok(broken.filter((d) => d.severity === 1).length >= 3, 'the linter does flag a broken Dockerfile')
})

t.test('stages: a pinned Node.js 20 slim base, deps, build, runtime', async (t) => {
  t.ok(stages.length >= 3, `multi-stage (${stages.length} stages)`)
  t.ok(stageByName('deps') && stageByName('build'), 'deps and build stages')
  const nodeImage = args.NODE_IMAGE
  t.match(nodeImage, /^node:20\.\d+\.\d+-[a-z]+-slim$/, 'Node.js 20 slim, pinned to a release tag')
  t.equal(substitute(final.from, args), nodeImage, 'the runtime base defaults to the same Node.js image (CPU)')
  t.equal(final.from, '${BASE_IMAGE}', 'the runtime base is the BASE_IMAGE build argument (CUDA variant)')
  const engines = JSON.parse(read('package.json')).engines.node as string
  t.ok(Number(/\d+/.exec(engines)?.[0]) <= Number(/^node:(\d+)/.exec(nodeImage)?.[1]), `the image satisfies engines ${engines}`)
  // The runtime base may lack Node.js (CUDA images): the binary is copied in.
  t.ok(
    final.instructions.some((i) => i.keyword === 'COPY' && /--from=\S+ \/usr\/local\/bin\/node /.test(i.args)),
    'the runtime stage copies the node binary',
  )
})

t.test('ONNX Runtime install mode: skip by default, cuda12 for the CUDA build', async (t) => {
  t.equal(args.ORT_INSTALL, 'skip', 'ORT_INSTALL defaults to skip')
  const deps = stageByName('deps') as Stage
  const build = stageByName('build') as Stage
  // The build argument must reach the install script as ONNXRUNTIME_NODE_INSTALL,
  // which it reads before .npmrc's onnxruntime-node-install=skip.
  t.ok(deps.instructions.some((i) => i.keyword === 'ARG' && i.args === 'ORT_INSTALL'), 'deps re-declares ARG ORT_INSTALL')
  t.equal(envOf(deps).ONNXRUNTIME_NODE_INSTALL, '${ORT_INSTALL}', 'deps installs what ORT_INSTALL asks for')
  t.equal(envOf(build).ONNXRUNTIME_NODE_INSTALL, 'skip', 'the compile stage never downloads CUDA binaries')
  for (const stage of [deps, build]) {
    const envLine = stage.instructions.find((i) => i.keyword === 'ENV' && i.args.includes('ONNXRUNTIME_NODE_INSTALL'))
    const npmLine = npmInstalls(stage)[0]
    t.ok(envLine && npmLine && envLine.line < npmLine.line, `${stage.name}: set before npm ci`)
  }
  // cuda12 is a manifest the installed onnxruntime-node knows for linux/x64.
  const require = createRequire(import.meta.url)
  const meta = require(join(dirname(require.resolve('onnxruntime-node/package.json')), 'script', 'install-metadata.js')) as {
    requirements: Record<string, string[]>
  }
  const cudaArgs = composeCuda.services.prefixd.build.args
  t.equal(cudaArgs.ORT_INSTALL, 'cuda12')
  t.ok(meta.requirements['linux/x64'].includes(cudaArgs.ORT_INSTALL), 'onnxruntime-node accepts it on linux/x64')
  t.match(cudaArgs.BASE_IMAGE, /^nvidia\/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+$/, 'a CUDA 12 runtime base with cuDNN')
  t.ok(dockerfileText.includes(`BASE_IMAGE=${cudaArgs.BASE_IMAGE}`), 'the Dockerfile documents the same CUDA base')
  t.ok(read('docs', 'deploy.md').includes(cudaArgs.BASE_IMAGE), 'docs/deploy.md names the same CUDA base')
})

t.test('runtime stage: production dependencies only, non-root, exec-form CMD', async (t) => {
  t.same(npmInstalls(final), [], 'no package install in the runtime stage')
  const copies = final.instructions.filter((i) => i.keyword === 'COPY')
  const fromStage = (what: RegExp) =>
    copies.map((c) => /--from=(\S+)/.exec(c.args)?.[1] && what.test(c.args) ? /--from=(\S+)/.exec(c.args)?.[1] : undefined).filter(Boolean)
  const modulesFrom = fromStage(/\bnode_modules\b/)
  t.equal(modulesFrom.length, 1, 'node_modules is copied from one stage')
  const source = stageByName(modulesFrom[0] as string)
  t.ok(source, `stage ${modulesFrom[0]} exists`)
  const installs = source ? npmInstalls(source) : []
  t.ok(installs.length > 0, 'that stage installs packages')
  for (const i of installs) t.match(i.args, /npm ci\b.*--omit=dev/, `line ${i.line}: npm ci --omit=dev`)
  t.not(modulesFrom[0], 'build', 'never the build stage (it has the dev dependencies)')
  t.same(fromStage(/\/dist\b/), ['build'], 'dist/ comes from the build stage')
  t.ok(copies.some((c) => !c.args.includes('--from=') && /\bpackage\.json\s+\.\/?$/.test(c.args)), 'package.json is in the image')
  // The compiled default-model.ts reads the bundled model at <root>/src/models/stories260K.
  t.ok(
    copies.some((c) => !c.args.includes('--from=') && /\bsrc\/models\/stories260K\s+\.\/src\/models\/stories260K$/.test(c.args)),
    'the default model is in the image where the compiled code looks for it',
  )

  const users = final.instructions.filter((i) => i.keyword === 'USER')
  const user = users[users.length - 1]?.args ?? ''
  const uid = user.split(':')[0]
  t.match(uid, /^\d+$/, 'a numeric user, so Kubernetes runAsNonRoot can verify it')
  t.not(Number(uid), 0, 'not root')
  t.ok(final.instructions.some((i) => i.keyword === 'RUN' && i.args.includes(`--uid ${uid}`)), 'the user is created')
  const cmd = final.instructions.filter((i) => i.keyword === 'CMD')
  t.equal(cmd.length, 1, 'one CMD')
  t.same(jsonArgs(cmd[0]), ['node', 'dist/cli.js', 'serve'], 'CMD in exec form: node is PID 1 and gets SIGTERM')
  t.ok(user && cmd[0] && users[users.length - 1].line < cmd[0].line, 'USER is set before CMD')
  t.notOk(final.instructions.some((i) => i.keyword === 'ENTRYPOINT'), 'no shell entrypoint wrapping it')

  t.ok(final.instructions.some((i) => i.keyword === 'EXPOSE' && i.args.split(' ').includes('8080')), 'EXPOSE 8080')
  const volumes = final.instructions.filter((i) => i.keyword === 'VOLUME').flatMap((i) => JSON.parse(i.args) as string[])
  const env = envOf(final)
  t.equal(env.PORT, '8080')
  t.equal(env.MODEL_DIR, '/models')
  t.equal(env.PREFIX_DIR, '/data/prefixes')
  for (const key of ['MODEL_DIR', 'PREFIX_DIR', 'CACHE_DIR']) t.ok(volumes.includes(env[key]), `${key} (${env[key]}) is a VOLUME`)
})

t.test('HEALTHCHECK asks /health with node itself, and fails when it should', async (t) => {
  const checks = final.instructions.filter((i) => i.keyword === 'HEALTHCHECK')
  t.equal(checks.length, 1, 'one HEALTHCHECK in the runtime stage')
  const command = jsonArgs(checks[0]) as string[]
  t.ok(Array.isArray(command), 'exec form')
  t.match(command.join(' '), /\/health/, 'on /health')

  // Three starts of node at once: each costs a few hundred milliseconds.
  const [ok, sick, gone] = await Promise.all([statusServer({ '/health': 200 }), statusServer({ '/health': 503 }), statusServer({})])
  await close(gone.server) // a port where nothing listens any more
  const codes = await Promise.all([ok, sick, gone].map((s) => runCheck(command, { PORT: String(s.port) })))
  await Promise.all([close(ok.server), close(sick.server)])
  t.same(codes, [0, 1, 1], 'exit 0 when healthy; 1 on a 503 and when nothing listens')
  t.same(ok.hits, ['/health'], 'it asked /health on PORT')
})

t.test('build context: an allowlist that covers every COPY', async (t) => {
  const root = read('.dockerignore')
  t.equal(read('docker', 'Dockerfile.dockerignore'), root, 'docker/Dockerfile.dockerignore matches .dockerignore')
  const patterns = root.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
  t.equal(patterns[0], '*', 'everything is left out first')
  const allowed = patterns.filter((p) => p.startsWith('!')).map((p) => p.slice(1).replace(/\/$/, ''))
  for (const secret of ['.git', 'node_modules', 'dist', '.env', 'docker/secrets', 'models', 'prefixes']) {
    t.notOk(allowed.includes(secret), `${secret} stays out of the context`)
  }
  const contextCopies = instructions
    .filter((i) => (i.keyword === 'COPY' || i.keyword === 'ADD') && !i.args.includes('--from='))
    .flatMap((i) => i.args.split(' ').filter((w) => !w.startsWith('--')).slice(0, -1))
  t.ok(contextCopies.length >= 5, 'the Dockerfile copies from the context')
  for (const src of contextCopies) {
    t.ok(allowed.includes(src.split('/')[0]), `${src} is in the allowlist`)
    t.ok(existsSync(join(REPO_ROOT, src)), `${src} exists in the repository`)
  }
})

// --- compose.yaml and prometheus.yml --------------------------------------------------

t.test('compose: prefixd, redis and prometheus wired together', async (t) => {
  const s = compose.services as Obj
  t.same(Object.keys(s).sort(), ['prefixd', 'prometheus', 'redis'])

  const p = s.prefixd
  t.equal(resolve(DOCKER_DIR, p.build.context), REPO_ROOT, 'built with the repository as context')
  t.ok(existsSync(join(REPO_ROOT, p.build.dockerfile)), 'from docker/Dockerfile')
  const redisUrl = new URL(p.environment.REDIS_URL)
  t.equal(redisUrl.protocol, 'redis:')
  t.equal(redisUrl.hostname, 'redis', 'REDIS_URL names the redis service')
  t.equal(redisUrl.port, '6379')
  t.same(p.depends_on.redis, { condition: 'service_healthy' }, 'prefixd waits for a healthy Redis')
  t.equal(p.environment.API_KEYS_FILE, `/run/secrets/${p.secrets[0]}`, 'API_KEYS_FILE is the mounted secret')
  t.ok(compose.secrets[p.secrets[0]]?.file, 'the secret comes from a file')
  const targets = (p.volumes as string[]).map((v) => volumeParts(v).target)
  t.ok(targets.includes(p.environment.PREFIX_DIR), 'the prefix store is a volume')
  t.ok(targets.includes(p.environment.CACHE_DIR), 'the cache is a volume')
  t.ok(targets.includes('/models'), 'the model folder is a volume')
  t.equal(p.read_only, true, 'read-only root filesystem')
  const grace = Number(/^(\d+)s$/.exec(p.stop_grace_period)?.[1])
  t.ok(grace * 1000 > Number(p.environment.SHUTDOWN_TIMEOUT_MS), `stop_grace_period ${p.stop_grace_period} outlasts the drain`)
  const namedVolumes = Object.keys(compose.volumes)
  for (const v of p.volumes as string[]) {
    const src = volumeParts(v).source
    t.ok(namedVolumes.includes(src), `volume ${src} is declared`)
  }

  const r = s.redis
  t.match(r.image, /^redis:\d/, 'a tagged Redis image')
  t.match((r.command as string[]).join(' '), /--appendonly yes/, 'append-only persistence')
  const data = (r.volumes as string[]).find((v) => v.endsWith(':/data'))
  t.ok(data && namedVolumes.includes(data.split(':')[0]), 'Redis /data on a named volume')
  t.same(r.healthcheck.test, ['CMD', 'redis-cli', 'ping'], 'a Redis healthcheck')
  t.notOk(r.ports, 'Redis is not published on the host')

  const m = s.prometheus
  t.match(m.image, /^prom\/prometheus:v\d+\.\d+\.\d+$/, 'a pinned Prometheus image')
  const config = (m.volumes as string[]).find((v) => v.includes(':/etc/prometheus/prometheus.yml'))
  t.ok(config && existsSync(resolve(DOCKER_DIR, config.split(':')[0])), 'prometheus.yml is mounted from docker/')
  t.ok(m.depends_on.prefixd.condition, 'prometheus depends on prefixd')

  for (const [name, svc] of Object.entries(s as Record<string, Obj>)) {
    t.ok(svc.healthcheck?.test, `${name} has a healthcheck`)
    for (const [dep, cond] of Object.entries((svc.depends_on ?? {}) as Record<string, Obj>)) {
      if (cond.condition === 'service_healthy') t.ok(s[dep].healthcheck, `${name} waits on ${dep}, which has a healthcheck`)
    }
  }
})

t.test('compose healthcheck asks /ready', async (t) => {
  const test = compose.services.prefixd.healthcheck.test as string[]
  t.equal(test[0], 'CMD')
  const command = test.slice(1)
  t.match(command.join(' '), /127\.0\.0\.1:8080\/ready/)
  const servers = await Promise.all([statusServer({ '/ready': 200 }), statusServer({ '/ready': 503 })])
  const codes = await Promise.all(
    servers.map((srv) => runCheck(command.map((a) => a.replace('127.0.0.1:8080', `127.0.0.1:${srv.port}`)), {})),
  )
  await Promise.all(servers.map((srv) => close(srv.server)))
  t.same(codes, [0, 1], 'exit 0 when ready, 1 on a 503')
  t.same(servers[1].hits, ['/ready'])
})

t.test('compose CUDA override', async (t) => {
  const p = composeCuda.services.prefixd
  t.equal(p.environment.EXECUTION_PROVIDER, 'cuda')
  t.same(p.deploy.resources.reservations.devices, [{ driver: 'nvidia', count: 1, capabilities: ['gpu'] }], 'one NVIDIA GPU')
  t.not(p.image, compose.services.prefixd.image, 'a separate image tag, so the CPU build is not overwritten')
})

t.test('prometheus.yml scrapes prefixd:9090/metrics, a port compose never publishes', async (t) => {
  const prom = parseYaml(read('docker', 'prometheus.yml')) as Obj
  const jobs = prom.scrape_configs as Obj[]
  const job = jobs.find((j) => (j.static_configs as Obj[] | undefined)?.some((sc) => (sc.targets as string[]).includes('prefixd:9090')))
  t.ok(job, 'a job targets prefixd:9090')
  t.equal(job?.metrics_path ?? '/metrics', '/metrics', 'on /metrics')
  t.equal(compose.services.prefixd.environment.METRICS_PORT, '9090', 'the METRICS_PORT the target names')
  const published = (compose.services.prefixd.ports as string[]).map((p) => p.split(':').pop())
  t.same(published, ['8080'], 'only the API port is published on the host')
  t.match(prom.global.scrape_interval, /^\d+s$/)
})
