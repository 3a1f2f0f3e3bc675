#!/usr/bin/env node
/**
 * The `prefixd` command: `serve` runs the server, `model generate` writes a
 * random-weight model, `config` prints the configuration table.
 */
import { configMarkdown } from './config/load-config.js'

const USAGE = `Usage: prefixd <command>

Commands:
  serve                 run the server (configured by environment variables; see README)
  model generate ...    write a deterministic random-weight model (prefixd model generate --help)
  config                print every environment variable with its default, as a Markdown table
  keys new --tenant T   make an API key (prints the key once, and its hash to configure)
  prefix upload|list|show|rm ...
                        manage the prefixes of a running server (prefixd prefix --help)
  bench                 run the benchmark harness from a source checkout (prefixd bench --help)
`

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'serve': {
      const { serve } = await import('./index.js')
      try {
        await serve()
      } catch (err) {
        process.stderr.write(`prefixd: ${(err as Error).message}\n`)
        // Whatever still holds the event loop (a half-started app), the start failed: exit now.
        process.exit(1)
      }
      return -1 // keep running
    }
    case 'model': {
      if (rest[0] !== 'generate') break
      const { runModelGenerate } = await import('./models/generate-command.js')
      return runModelGenerate(rest.slice(1))
    }
    case 'config':
      process.stdout.write(`${configMarkdown()}\n`)
      return 0
    case 'prefix': {
      const { runPrefix } = await import('./cli/prefix-command.js')
      return runPrefix(rest)
    }
    case 'bench': {
      const { runBench } = await import('./cli/bench-command.js')
      return runBench(rest)
    }
    case 'keys': {
      const { runKeys } = await import('./auth/keys-command.js')
      return runKeys(rest)
    }
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE)
      return command === undefined ? 2 : 0
  }
  process.stderr.write(`prefixd: unknown command '${argv.join(' ')}'\n\n${USAGE}`)
  return 2
}

const code = await main(process.argv.slice(2))
if (code >= 0) process.exitCode = code
