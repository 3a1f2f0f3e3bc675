/**
 * Immutable, content-addressed blobs on local disk:
 * `<store>/blobs/<sha256>.safetensors`. A blob is written to a temporary name,
 * fsynced, renamed into place and the folder fsynced, so a crash leaves either
 * the whole blob or nothing under its final name. In the Redis setup this
 * folder is each replica's local copy; Redis holds the shared one.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

const SHA256 = /^[0-9a-f]{64}$/

export class BlobFiles {
  private constructor(readonly dir: string) {}

  static async open(dir: string): Promise<BlobFiles> {
    await mkdir(dir, { recursive: true })
    return new BlobFiles(dir)
  }

  pathOf(sha256: string): string {
    // The name comes from our own index, but a path is never built from anything but hex.
    if (!SHA256.test(sha256)) throw new Error(`not a sha256: ${JSON.stringify(sha256)}`)
    return join(this.dir, `${sha256}.safetensors`)
  }

  /** Writes the blob durably; `created` is false when it was already there. */
  async write(sha256: string, data: Uint8Array): Promise<{ created: boolean }> {
    const final = this.pathOf(sha256)
    if ((await this.read(sha256)) !== null) return { created: false }
    await writeFileAtomic(final, this.dir, data)
    return { created: true }
  }

  /** The blob's bytes if present and intact; a damaged copy counts as absent (and is removed). */
  async read(sha256: string): Promise<Buffer | null> {
    let data: Buffer
    try {
      data = await readFile(this.pathOf(sha256))
    } catch {
      return null
    }
    if (sha256Hex(data) === sha256) return data
    await this.remove(sha256)
    return null
  }

  async remove(sha256: string): Promise<void> {
    await unlink(this.pathOf(sha256)).catch(() => undefined)
  }
}

/** fsync a folder so a rename in it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Writes a small file atomically: temporary name, fsync, rename, fsync the folder. */
export async function writeFileAtomic(path: string, dir: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  const handle = await open(tmp, 'wx')
  try {
    await handle.writeFile(data)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(tmp, path)
  await fsyncDir(dir)
}
