/**
 * `prefixd prefix upload|list|show|rm`: the prefix store of a running server,
 * over its REST API. Exit 0 when done, 1 when the server or the network
 * refused, 2 for a mistake in the command line.
 */
import { parseArgs } from 'node:util'
import type { AdapterShapeFields } from '../prefixes/adapter-kind.js'
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, OperationError, UsageError, processIO, type CliIO } from './io.js'
import { ServerClient } from './server-client.js'
import { collectFiles, multipartBody, progressPrinter } from './upload-body.js'

export const PREFIX_USAGE = `Usage: prefixd prefix <command> [options]

Commands:
  upload ID PATH...    upload a prefix: PATH is a folder (a PEFT adapter, or
                       prefix.safetensors) or the files themselves
      --description TEXT   what the prefix is for
      --replace            store a new version of an existing id (PUT) instead
                           of refusing an id that exists
  list                 every prefix, by id
  show ID              one prefix's metadata
  rm ID                delete a prefix (requests already running finish on it)

Options:
  --url URL            the server (default: $PREFIXD_URL, else http://127.0.0.1:8080)
  --api-key KEY        sent as Authorization: Bearer (default: $PREFIXD_API_KEY)
  --json               print JSON (list, show, upload)
  --quiet              no upload progress on stderr
  -h, --help           show this help

Exit status: 0 done, 1 the server or network refused, 2 bad command line.
`

/** A record as the server's API returns it: the store's shape fields, and the rest as JSON carries it. */
interface PrefixRecord extends AdapterShapeFields {
  id: string
  version: number
  /** Absent from servers older than adapter kinds: those store prefixes only. */
  kind?: string
  bytes: number
  format: string
  description: string
  owner: string
  updated_at: string
  sha256: string
}

const OPTIONS = {
  url: { type: 'string' },
  'api-key': { type: 'string' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean' },
  description: { type: 'string' },
  replace: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

function needArgs(positionals: string[], count: number, what: string): void {
  if (positionals.length !== count) throw new UsageError(`${what}`)
}

/** A prefix's per-layer key/value shape (layers x kv heads x head size), the width of a prompt-learning adapter's vectors, or a LoRA's rank and modules. */
function shapeOf(r: PrefixRecord): { short: string; long: string } {
  if (r.rank !== undefined) {
    const modules = (r.target_modules ?? []).join(',')
    return { short: `r${r.rank}:${modules}`, long: `rank ${r.rank} on ${modules}` }
  }
  if (r.hidden_size !== undefined) return { short: `${r.hidden_size}`, long: `hidden size ${r.hidden_size}` }
  return { short: `${r.num_layers}x${r.num_kv_heads}x${r.head_dim}`, long: `${r.num_layers} layers, ${r.num_kv_heads} kv heads, head size ${r.head_dim}` }
}

function table(records: PrefixRecord[]): string {
  const rows = [['ID', 'KIND', 'VERSION', 'TOKENS', 'SHAPE', 'BYTES', 'UPDATED', 'DESCRIPTION']]
  for (const r of records) {
    rows.push([r.id, r.kind ?? 'prefix', String(r.version), String(r.num_virtual_tokens), shapeOf(r).short, String(r.bytes), r.updated_at, r.description])
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)))
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ').trimEnd()).join('\n') + '\n'
}

function describe(r: PrefixRecord): string {
  return [
    `id:           ${r.id}`,
    `kind:         ${r.kind ?? 'prefix'}`,
    `version:      ${r.version}`,
    `tokens:       ${r.num_virtual_tokens}`,
    `shape:        ${shapeOf(r).long}`,
    `format:       ${r.format}`,
    `bytes:        ${r.bytes}`,
    `sha256:       ${r.sha256}`,
    `owner:        ${r.owner}`,
    `updated:      ${r.updated_at}`,
    `description:  ${r.description}`,
  ].join('\n') + '\n'
}

export async function runPrefix(argv: string[], io: CliIO = processIO): Promise<number> {
  try {
    let parsed
    try {
      parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
    const { values, positionals } = parsed
    if (values.help) {
      io.out(PREFIX_USAGE)
      return EXIT_OK
    }
    const [command, ...args] = positionals
    const client = new ServerClient({
      url: values.url ?? io.env.PREFIXD_URL ?? 'http://127.0.0.1:8080',
      apiKey: values['api-key'] ?? io.env.PREFIXD_API_KEY,
    })
    const print = (value: unknown, human: string) => io.out(values.json ? `${JSON.stringify(value, null, 2)}\n` : human)
    switch (command) {
      case 'list': {
        needArgs(args, 0, 'list takes no arguments')
        const all: PrefixRecord[] = []
        let cursor: string | null = null
        do {
          const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`
          const page: { prefixes: PrefixRecord[]; next_cursor: string | null } = await client.request('GET', `/prefixes?limit=1000${query}`)
          all.push(...page.prefixes)
          cursor = page.next_cursor
        } while (cursor !== null)
        print(all, all.length === 0 ? 'no prefixes\n' : table(all))
        return EXIT_OK
      }
      case 'show': {
        needArgs(args, 1, 'show takes one prefix id')
        const record = await client.request<PrefixRecord>('GET', `/prefixes/${encodeURIComponent(args[0])}`)
        print(record, describe(record))
        return EXIT_OK
      }
      case 'rm': {
        needArgs(args, 1, 'rm takes one prefix id')
        await client.request('DELETE', `/prefixes/${encodeURIComponent(args[0])}`)
        if (!values.json) io.out(`deleted ${args[0]}\n`)
        return EXIT_OK
      }
      case 'upload': {
        if (args.length < 2) throw new UsageError('upload takes a prefix id and at least one file or folder')
        const [id, ...paths] = args
        const files = await collectFiles(paths)
        const fields: Record<string, string> = values.replace ? {} : { id }
        if (values.description !== undefined) fields.description = values.description
        const quiet = values.quiet === true || values.json === true
        const upload = await multipartBody(files, fields, quiet ? () => {} : progressPrinter(io.err, io.errIsTTY))
        const record = await client.request<PrefixRecord>(values.replace ? 'PUT' : 'POST', values.replace ? `/prefixes/${encodeURIComponent(id)}` : '/prefixes', {
          body: upload.body,
          headers: { 'content-type': upload.contentType, 'content-length': String(upload.total) },
          duplex: 'half',
        })
        print(record, `uploaded ${record.id} version ${record.version} (${record.num_virtual_tokens} tokens, sha256 ${record.sha256.slice(0, 12)})\n`)
        return EXIT_OK
      }
      default:
        throw new UsageError(command === undefined ? 'missing command' : `unknown command '${command}'`)
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`prefixd prefix: ${err.message}\n\n${PREFIX_USAGE}`)
      return EXIT_USAGE
    }
    if (err instanceof OperationError) {
      io.err(`prefixd prefix: ${err.message}\n`)
      return EXIT_FAILED
    }
    throw err
  }
}
