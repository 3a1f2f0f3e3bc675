/**
 * A prefix upload as a multipart body whose bytes are counted as fetch reads
 * them, so a large upload shows its progress. The form is encoded once in
 * memory (files are bounded by the server's MAX_PREFIX_FILE_BYTES anyway),
 * then streamed in 256 KiB slices.
 */
import { readdir, readFile, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { UsageError } from './io.js'

const SLICE = 256 * 1024
/** The files a prefix folder may hold: a PEFT adapter, or prefixd's native file. */
const PREFIX_FILES = new Set(['adapter_config.json', 'adapter_model.safetensors', 'prefix.safetensors'])

/** The files to send: each path is a file, or a folder whose prefix files are taken. */
export async function collectFiles(paths: string[]): Promise<string[]> {
  const files: string[] = []
  for (const path of paths) {
    let info
    try {
      info = await stat(path)
    } catch {
      throw new UsageError(`no such file or folder: ${path}`)
    }
    if (!info.isDirectory()) {
      files.push(path)
      continue
    }
    const found = (await readdir(path)).filter((name) => PREFIX_FILES.has(name)).sort()
    if (found.length === 0) throw new UsageError(`${path} holds no adapter_config.json + adapter_model.safetensors or prefix.safetensors`)
    files.push(...found.map((name) => join(path, name)))
  }
  return files
}

export interface CountedBody {
  body: ReadableStream<Uint8Array>
  contentType: string
  total: number
}

export async function multipartBody(files: string[], fields: Record<string, string>, onProgress: (sent: number, total: number) => void): Promise<CountedBody> {
  const form = new FormData()
  for (const [name, value] of Object.entries(fields)) form.append(name, value)
  for (const file of files) form.append('file', new Blob([await readFile(file)]), basename(file))
  const encoded = new Response(form)
  const contentType = encoded.headers.get('content-type')!
  const bytes = new Uint8Array(await encoded.arrayBuffer())
  let sent = 0
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= bytes.length) {
        controller.close()
        return
      }
      const slice = bytes.subarray(sent, Math.min(sent + SLICE, bytes.length))
      sent += slice.length
      onProgress(sent, bytes.length)
      controller.enqueue(slice)
    },
  })
  return { body, contentType, total: bytes.length }
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`

/** Progress on stderr: one redrawn line on a terminal, a line per quarter otherwise (logs). */
export function progressPrinter(err: (s: string) => void, isTTY: boolean): (sent: number, total: number) => void {
  let lastQuarter = -1
  return (sent, total) => {
    const pct = Math.floor((sent / total) * 100)
    if (isTTY) {
      err(`\ruploading ${pct}% (${mb(sent)} of ${mb(total)})${sent === total ? '\n' : ''}`)
      return
    }
    const quarter = Math.floor(pct / 25)
    if (quarter !== lastQuarter) {
      lastQuarter = quarter
      err(`uploading ${pct}% (${mb(sent)} of ${mb(total)})\n`)
    }
  }
}
