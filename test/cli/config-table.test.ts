/**
 * The README's configuration table is what `prefixd config` prints: a new
 * variable, default or description that the README lacks fails here.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

t.test("README's configuration table equals `prefixd config`", async (t) => {
  const loader = join(process.cwd(), 'node_modules/@tapjs/typescript/dist/esm/import.mjs')
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', loader, 'src/cli.ts', 'config'], {
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' },
  })
  const readme = readFileSync(join(process.cwd(), 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('\n## Configuration\n'))
  t.ok(section.length > 0 && readme.includes('\n## Configuration\n'), 'README has a Configuration section')
  const lines = section.split('\n')
  const start = lines.findIndex((l) => l.startsWith('|'))
  const end = lines.findIndex((l, i) => i > start && !l.startsWith('|'))
  const table = lines.slice(start, end).join('\n')
  t.ok(stdout.split('\n').length > 10, 'prefixd config prints a table')
  t.equal(table, stdout.trimEnd())
})
