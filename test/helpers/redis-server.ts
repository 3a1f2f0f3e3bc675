/**
 * A real redis-server for the tests of the Redis path, on a free port (never
 * the machine's 6379), killed when the test ends. With `dir`, it persists to
 * an append-only file there, fsynced on every write, so a kill -9 and restart
 * keeps everything acknowledged before it.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { freePort } from './free-port.js'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestLike } from './app.js'

export interface RedisServer {
  port: number
  url: string
  /** Kills the server (SIGKILL: no goodbye, no final save). */
  kill(): Promise<void>
  /** Sends the server process a signal (SIGSTOP to stall it, SIGCONT to resume). */
  signal(sig: NodeJS.Signals): void
  /** Starts it again on the same port (and the same data folder). */
  restart(): Promise<void>
}

/** Sends PING over a raw socket until PONG comes back. */
async function waitForPong(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, '127.0.0.1')
      sock.setTimeout(500)
      sock.on('connect', () => sock.write('PING\r\n'))
      sock.on('data', (d) => {
        sock.destroy()
        resolve(d.toString().startsWith('+PONG'))
      })
      sock.on('error', () => resolve(false))
      sock.on('timeout', () => {
        sock.destroy()
        resolve(false)
      })
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export async function startRedis(t: TestLike, opts: { persistent?: boolean } = {}): Promise<RedisServer> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'prefixd-redis-'))
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '']
  args.push(...(opts.persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']))
  let child: ChildProcess | null = null
  const exited = () =>
    new Promise<void>((resolve) => {
      if (child === null || child.exitCode !== null || child.signalCode !== null) resolve()
      else child.once('exit', () => resolve())
    })
  const start = async () => {
    child = spawn('redis-server', args, { stdio: 'ignore' })
    await waitForPong(port)
  }
  const kill = async () => {
    const c = child
    if (c === null) return
    const done = exited()
    c.kill('SIGKILL')
    await done
    child = null
  }
  await start()
  t.teardown(async () => {
    await kill()
    rmSync(dir, { recursive: true, force: true })
  })
  // SIGSTOP / SIGCONT: a stalled Redis keeps its connections but answers nothing.
  const signal = (sig: NodeJS.Signals) => void (child as ChildProcess | null)?.kill(sig)
  return { port, url: `redis://127.0.0.1:${port}`, kill, restart: start, signal }
}
