/**
 * A clone stands alone: nothing under src/, test/ or bench/ reads data from
 * beside the repository (the shared test data folder a developer's machine may
 * have next to it). Test data lives in the repository: see
 * test/helpers/shared-data.ts and test/fixtures/README.md.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('../../', import.meta.url))
// Spelled in pieces so that this file does not match itself.
const OUTSIDE = new RegExp(['\\.\\.', 'shared'].join('[\\\\/]'))
const TEXT = /\.(ts|js|mjs|cjs|json|md|sh|ya?ml|txt)$/

function* textFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) yield* textFiles(path)
    else if (entry.isFile() && TEXT.test(entry.name)) yield path
  }
}

t.test('no file under src/, test/ or bench/ refers to the shared data beside the repository', async (t) => {
  let scanned = 0
  const offenders: string[] = []
  for (const top of ['src', 'test', 'bench']) {
    for (const file of textFiles(join(root, top))) {
      scanned++
      if (OUTSIDE.test(readFileSync(file, 'utf8'))) offenders.push(relative(root, file))
    }
  }
  t.ok(scanned > 50, `${scanned} files scanned`)
  t.same(offenders, [], 'copy what a test needs into test/fixtures/ instead')
})

t.test('the pattern catches the ways such a path is written', async (t) => {
  // Built at run time, like the pattern, so that the scan above passes over them.
  const up = (sep: string) => ['..', 'shared'].join(sep)
  for (const s of [`new URL('../../${up('/')}/models/x', import.meta.url)`, `join(root, "${up('\\')}")`, `\`\${dir}/${up('/')}/\``]) {
    t.match(s, OUTSIDE, s)
  }
  t.notMatch("import { storiesModelDir } from './shared-data.js'", OUTSIDE)
})
