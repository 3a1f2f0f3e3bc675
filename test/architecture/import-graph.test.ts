/**
 * The room rules of DESIGN.md, checked on the real source tree: no cycle
 * between src folders, the engine worker never loads the HTTP stack, and the
 * shared vocabulary (src/domain) imports nothing but Node's own modules.
 */
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { reachableFiles, readImportGraph, roomCycles, roomEdges, roomOf, type ImportGraph } from '../helpers/import-graph.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const graph = readImportGraph(root)

const isFastify = (pkg: string) => pkg === 'fastify' || pkg.startsWith('fastify-') || pkg.startsWith('@fastify/')

t.test('the scanner sees the imports the tree is known to have', async (t) => {
  // Guards the checks below against passing on an empty or misread graph.
  t.ok(graph.files.size > 50, `${graph.files.size} source files`)
  t.ok(graph.files.get('src/engine/worker.ts')?.includes('src/engine/protocol.ts'), 'worker → protocol')
  t.ok(graph.packages.get('src/errors.ts')?.includes('@fastify/error'), 'the HTTP catalog loads @fastify/error')
  for (const [file, targets] of graph.files) {
    for (const to of targets) t.ok(graph.files.has(to), `${file} imports ${to}, a file that exists`)
  }
})

t.test('the cycle finder finds a cycle between folders and none without one', async (t) => {
  const made: ImportGraph = {
    files: new Map([
      ['src/a/x.ts', ['src/b/y.ts']],
      ['src/b/y.ts', ['src/c/z.ts']],
      ['src/c/z.ts', ['src/a/w.ts']],
      ['src/a/w.ts', []],
      ['src/main.ts', ['src/a/x.ts']],
    ]),
    packages: new Map(),
  }
  t.same(roomCycles(roomEdges(made)), [['src/a', 'src/b', 'src/c']])
  made.files.set('src/c/z.ts', [])
  t.same(roomCycles(roomEdges(made)), [])
  t.equal(roomOf('src/errors.ts'), 'src/errors.ts', 'a file directly in src is its own room')
  t.equal(roomOf('src/server/openai/stream.ts'), 'src/server/openai')
})

t.test('no cycle between src folders', async (t) => {
  const edges = roomEdges(graph)
  const cycles = roomCycles(edges)
  const evidence = cycles.map((group) =>
    group.flatMap((a) => group.filter((b) => edges.get(a)?.has(b)).map((b) => edges.get(a)!.get(b)!)).join('; '),
  )
  t.same(evidence, [], 'import edges that close a cycle')
})

t.test('the engine worker reaches only the engine and the shared vocabulary, and no Fastify package', async (t) => {
  const worker = reachableFiles(graph, 'src/engine/worker.ts')
  t.ok(worker.size > 10, `${worker.size} files in the worker's graph`)
  const outside = [...worker].filter((f) => !f.startsWith('src/engine/') && !f.startsWith('src/domain/'))
  t.same(outside, [], 'files outside src/engine and src/domain')
  const fastify = [...worker].flatMap((f) => (graph.packages.get(f) ?? []).filter(isFastify).map((p) => `${f} → ${p}`))
  t.same(fastify, [], 'Fastify packages in the worker graph')
})

t.test('src/domain is a leaf: it imports no other folder and no package but Node\'s own', async (t) => {
  const domain = [...graph.files.keys()].filter((f) => f.startsWith('src/domain/'))
  t.ok(domain.length >= 3, domain.join(', '))
  for (const f of domain) {
    t.same(
      graph.files.get(f)!.filter((to) => !to.startsWith('src/domain/')),
      [],
      `${f} imports only src/domain`,
    )
    t.same(graph.packages.get(f)!.filter((p) => !p.startsWith('node:')), [], `${f} imports no package but Node's own`)
  }
})
