/**
 * The pretest script's decisions, run by the real /bin/sh against a PATH that
 * holds only the programs each case says exist. The system's own packages are
 * never touched: `id` and `apt-get` are small scripts here, and apt-get only
 * records how it was called.
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import type { TestLike } from '../helpers/app.js'

const script = fileURLToPath(new URL('./install-test-tools.sh', import.meta.url))

function run(t: TestLike, opts: { present: string[]; uid: number; aptGet: boolean }) {
  const bin = mkdtempSync(join(tmpdir(), 'prefixd-tools-'))
  t.teardown(() => rmSync(bin, { recursive: true, force: true }))
  const aptLog = join(bin, 'apt-get.log')
  const tool = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`)
    chmodSync(join(bin, name), 0o755)
  }
  for (const name of opts.present) tool(name, 'exit 0')
  tool('id', `echo ${opts.uid}`)
  if (opts.aptGet) tool('apt-get', `echo "$*" >> '${aptLog}'`)
  const r = spawnSync('/bin/sh', [script], { env: { PATH: bin }, encoding: 'utf8' })
  return { status: r.status, stderr: r.stderr, aptCalls: existsSync(aptLog) ? readFileSync(aptLog, 'utf8').trim().split('\n') : [] }
}

const ALL = ['redis-server', 'promtool', 'prometheus', 'curl']

t.test('everything present: nothing to do, nothing said', async (t) => {
  const r = run(t, { present: ALL, uid: 1000, aptGet: false })
  t.equal(r.status, 0)
  t.equal(r.stderr, '')
})

t.test('without the rights to install: one line naming the packages, exit 1, no apt-get', async (t) => {
  const r = run(t, { present: ['promtool'], uid: 1000, aptGet: true })
  t.equal(r.status, 1)
  const lines = r.stderr.trim().split('\n')
  t.equal(lines.length, 1, 'one line')
  t.match(lines[0], /redis-server prometheus curl/, 'names every missing package (promtool alone is not enough)')
  t.same(r.aptCalls, [], 'apt-get never ran')
})

t.test('as root with apt-get: update, then install exactly the missing packages', async (t) => {
  const r = run(t, { present: ['curl', 'promtool', 'prometheus'], uid: 0, aptGet: true })
  t.equal(r.status, 0)
  t.same(r.aptCalls, ['update -qq', 'install -y -qq --no-install-recommends redis-server'])
})

t.test('as root but no apt-get (not Debian/Ubuntu): the same one line, exit 1', async (t) => {
  const r = run(t, { present: ['redis-server', 'curl'], uid: 0, aptGet: false })
  t.equal(r.status, 1)
  t.equal(r.stderr.trim().split('\n').length, 1)
  t.match(r.stderr, /needs these packages installed first: prometheus /)
})
