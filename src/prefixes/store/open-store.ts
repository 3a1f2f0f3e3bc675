/** Picks the index the configuration asks for (Redis when REDIS_URL is set) and opens the store on it. */
import { join, resolve } from 'node:path'
import type { Config } from '../../config/schema.js'
import type { ServedModel } from '../adapter-kind.js'
import { EmbeddedIndex } from './embedded-index.js'
import type { AdapterSink } from './engine-prefix-cache.js'
import { PrefixStore, type PrefixStoreOptions } from './prefix-store.js'
import { RedisIndex } from './redis-index.js'

export async function openPrefixStore(
  config: Config,
  model: ServedModel,
  sink: AdapterSink,
  log: PrefixStoreOptions['log'],
): Promise<PrefixStore> {
  const prefixDir = resolve(config.PREFIX_DIR)
  const storeDir = join(prefixDir, '.store')
  // Reconnect attempts fail every half second while Redis is away: say so once every ten seconds, not each time.
  let lastWarning = 0
  const warnConnection = (err: Error) => {
    if (Date.now() - lastWarning < 10_000) return
    lastWarning = Date.now()
    log.warn({ problem: err.message }, 'prefix store: Redis connection error')
  }
  const index =
    config.REDIS_URL === ''
      ? await EmbeddedIndex.open(storeDir)
      : await RedisIndex.open({
          url: config.REDIS_URL,
          blobDir: join(storeDir, 'blobs'),
          timeoutMs: config.STORE_TIMEOUT_MS,
          onConnectionError: warnConnection,
        })
  try {
    return await PrefixStore.open({
      index,
      model,
      sink,
      prefixDir,
      cacheBytes: config.PREFIX_CACHE_BYTES,
      maxFileBytes: config.MAX_PREFIX_FILE_BYTES,
      recheckMs: config.PREFIX_RECHECK_MS,
      storeDir,
      quota: { maxPrefixes: config.TENANT_MAX_PREFIXES, maxBytes: config.TENANT_MAX_PREFIX_BYTES },
      log,
    })
  } catch (err) {
    await index.close()
    throw err
  }
}
