/**
 * The shell examples of a Markdown file, as the commands a reader would type:
 * fenced `sh` blocks, split into commands the way bash would read them (a
 * newline ends a command unless it is escaped or inside quotes, which is how
 * a multi-line JSON body stays one curl), comments dropped.
 */

/** The text of every ```sh block, in order. */
export function shellBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1])
}

/** One block's commands, comments dropped. */
export function splitCommands(block: string): string[] {
  const commands: string[] = []
  let current = ''
  let quote: "'" | '"' | null = null
  for (let i = 0; i < block.length; i++) {
    const ch = block[i]
    if (quote) {
      if (ch === '\\' && quote === '"') {
        current += ch + block[++i]
        continue
      }
      if (ch === quote) quote = null
      current += ch
      continue
    }
    if (ch === "'" || ch === '"') quote = ch
    if (ch === '\\' && block[i + 1] === '\n') {
      current += '\\\n'
      i++
      continue
    }
    if (ch === '#' && (current === '' || /\s$/.test(current))) {
      // A comment (bash's rule: # starting a word), to the end of the line.
      while (i + 1 < block.length && block[i + 1] !== '\n') i++
      continue
    }
    if (ch === '\n') {
      if (current.trim() !== '') commands.push(current.trim())
      current = ''
      continue
    }
    current += ch
  }
  if (quote) throw new Error(`unterminated ${quote} quote in shell block:\n${block}`)
  if (current.trim() !== '') commands.push(current.trim())
  return commands
}

/** The JSON body of a curl command's `-d '...'`, if it has one. */
export function curlJsonBody(command: string): Record<string, unknown> | undefined {
  const m = /\s-d\s+'([^']*)'/.exec(command)
  return m ? (JSON.parse(m[1]) as Record<string, unknown>) : undefined
}
