/**
 * The import graph of src/, read with the TypeScript compiler's own import
 * scanner (static imports, re-exports, `import()` and `import type` alike), and
 * the folder-level questions the architecture test asks of it.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import ts from 'typescript'

export interface ImportGraph {
  /** Repository-relative source file → the repository-relative files it imports. */
  files: Map<string, string[]>
  /** Repository-relative source file → the packages it imports ('fastify', '@fastify/error', 'node:fs'). */
  packages: Map<string, string[]>
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    if (e.isDirectory()) return sourceFiles(path)
    return e.name.endsWith('.ts') ? [path] : []
  })
}

/** Reads every .ts file under `srcDir`; paths in the result are relative to `root`. */
export function readImportGraph(root: string, srcDir = 'src'): ImportGraph {
  const files = new Map<string, string[]>()
  const packages = new Map<string, string[]>()
  for (const abs of sourceFiles(resolve(root, srcDir))) {
    const from = relative(root, abs)
    const specifiers = ts.preProcessFile(readFileSync(abs, 'utf8'), true, true).importedFiles.map((f) => f.fileName)
    // ESM sources name their siblings by the .js they compile to.
    const local = specifiers.filter((s) => s.startsWith('.')).map((s) => relative(root, resolve(dirname(abs), s.replace(/\.js$/, '.ts'))))
    files.set(from, local)
    packages.set(
      from,
      specifiers.filter((s) => !s.startsWith('.')),
    )
  }
  return { files, packages }
}

/**
 * The "room" a file lives in: its folder. Files directly in src/ (entry
 * points, the HTTP error catalog) are each a room of their own, since the
 * entry points import everything and must not make a cycle of the catalog.
 */
export function roomOf(file: string, srcDir = 'src'): string {
  const dir = dirname(file)
  return dir === srcDir ? file : dir
}

/** Folder → folders it imports, with one file pair per edge as evidence. */
export function roomEdges(graph: ImportGraph): Map<string, Map<string, string>> {
  const edges = new Map<string, Map<string, string>>()
  for (const [from, targets] of graph.files) {
    for (const to of targets) {
      const a = roomOf(from)
      const b = roomOf(to)
      if (a === b) continue
      if (!edges.has(a)) edges.set(a, new Map())
      if (!edges.get(a)!.has(b)) edges.get(a)!.set(b, `${from} → ${to}`)
    }
  }
  return edges
}

/** Every strongly connected group of two or more rooms (Tarjan): each one is a cycle. */
export function roomCycles(edges: Map<string, Map<string, string>>): string[][] {
  let counter = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const cycles: string[][] = []
  const visit = (v: string): void => {
    index.set(v, counter)
    low.set(v, counter)
    counter++
    stack.push(v)
    onStack.add(v)
    for (const w of edges.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!))
      }
    }
    if (low.get(v) !== index.get(v)) return
    const group: string[] = []
    let w: string
    do {
      w = stack.pop()!
      onStack.delete(w)
      group.push(w)
    } while (w !== v)
    if (group.length > 1) cycles.push(group.sort())
  }
  for (const v of edges.keys()) if (!index.has(v)) visit(v)
  return cycles
}

/** Every file reachable from `entry`, the entry included. */
export function reachableFiles(graph: ImportGraph, entry: string): Set<string> {
  const seen = new Set<string>()
  const todo = [entry]
  while (todo.length > 0) {
    const file = todo.pop()!
    if (seen.has(file)) continue
    seen.add(file)
    todo.push(...(graph.files.get(file) ?? []))
  }
  return seen
}
