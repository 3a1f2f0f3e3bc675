/**
 * What a CLI command reads and writes, as a parameter so tests run commands
 * in-process and capture their output: environment, stdout, stderr, and
 * whether stderr is a terminal (progress redraws one line there).
 */
export interface CliIO {
  env: Record<string, string | undefined>
  out: (text: string) => void
  err: (text: string) => void
  errIsTTY: boolean
}

export const processIO: CliIO = {
  env: process.env,
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  errIsTTY: process.stderr.isTTY === true,
}

/** Exit codes scripts can rely on. */
export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2

/** A mistake in the command line: exit 2 with the usage. */
export class UsageError extends Error {}

/** The server (or the network) refused the operation: exit 1. */
export class OperationError extends Error {}
