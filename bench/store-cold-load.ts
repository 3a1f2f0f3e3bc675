/**
 * Cold load of one prefix of 20 virtual tokens in the 110m llama shape (12
 * layers, 12 key/value heads, head size 64: 1.4 MiB of float32): the path a
 * cache miss takes on the main thread — read the blob (local disk, or Redis on
 * a replica without a local copy), verify its sha256, parse and validate the
 * native file, check the shape. Also the upload-side conversion of the same
 * prefix sent as a PEFT adapter.
 */
import { join } from 'node:path'
import { readNativePrefix } from '../src/prefixes/native-format.js'
import { assertPrefixFitsModel } from '../src/prefixes/shape-check.js'
import { EmbeddedIndex } from '../src/prefixes/store/embedded-index.js'
import { RedisIndex } from '../src/prefixes/store/redis-index.js'
import { newRecord } from '../src/prefixes/store/folder-seed.js'
import { parseUpload, toStoredBlob } from '../src/prefixes/store/upload-conversion.js'
import { rm } from 'node:fs/promises'
import { LLAMA_110M, peftUpload, specOf, summary, timed } from './store-shared.js'

export async function coldLoad(opts: { dir: string; redisUrl: string; runs: number }): Promise<string[]> {
  const model = { spec: specOf(LLAMA_110M), accepts: new Set(['past_kv'] as const) }
  const P = 20
  const convert: number[] = []
  let stored = toStoredBlob(parseUpload(peftUpload(LLAMA_110M, P, 1), 1 << 30), model, 'cold')
  for (let i = 0; i < opts.runs; i++) {
    const files = peftUpload(LLAMA_110M, P, 1)
    convert.push((await timed(() => (stored = toStoredBlob(parseUpload(files, 1 << 30), model, 'cold')))).ms)
  }
  const record = newRecord('cold', stored, { description: '', source: 'upload' })
  const embedded = await EmbeddedIndex.open(join(opts.dir, 'cold-embedded'))
  await embedded.commit(record, stored.blob, 'create')
  const redisA = await RedisIndex.open({ url: opts.redisUrl, blobDir: join(opts.dir, 'cold-a'), timeoutMs: 2000, keyPrefix: 'cold:' })
  await redisA.commit(record, stored.blob, 'create')
  const redisB = await RedisIndex.open({ url: opts.redisUrl, blobDir: join(opts.dir, 'cold-b'), timeoutMs: 2000, keyPrefix: 'cold:' })

  const materialize = (blob: Buffer) => {
    const { prefix } = readNativePrefix(blob)
    assertPrefixFitsModel(prefix, model.spec, 'cold')
    return prefix
  }
  const fromDisk: number[] = []
  const fromRedis: number[] = []
  const parseOnly: number[] = []
  for (let i = 0; i < opts.runs; i++) {
    fromDisk.push((await timed(async () => materialize((await embedded.readBlob(stored.sha256))!))).ms)
    // Remove B's local copy each time so the read goes to Redis.
    await rm(join(opts.dir, 'cold-b', `${stored.sha256}.safetensors`), { force: true })
    fromRedis.push((await timed(async () => materialize((await redisB.readBlob(stored.sha256))!))).ms)
    parseOnly.push((await timed(() => materialize(stored.blob))).ms)
  }
  await Promise.all([embedded.close(), redisA.close(), redisB.close()])
  const mib = (stored.blob.length / 2 ** 20).toFixed(2)
  return [
    `Cold load, 110m llama shape (12 layers, 12 kv heads, head 64), 20 virtual tokens: native blob ${mib} MiB, ${opts.runs} runs, milliseconds median / p99:`,
    '',
    '| path | median / p99 ms |',
    '|---|---|',
    `| parse + validate + shape check only (blob in memory) | ${summary(parseOnly)} |`,
    `| local disk: read + sha256 + parse + validate | ${summary(fromDisk)} |`,
    `| Redis (no local copy): GET + sha256 + local write (fsync) + parse + validate | ${summary(fromRedis)} |`,
    `| upload conversion: PEFT files → validated native blob + sha256 | ${summary(convert)} |`,
  ]
}
