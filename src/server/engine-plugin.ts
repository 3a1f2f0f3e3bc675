/**
 * Starts the engine worker for the app and exposes what the routes need:
 * the engine client, the tokenizer and the generation
 * service. The worker is closed with the app. If it dies, the app turns
 * not-ready, and the engine client's 'died' event lets the process entry exit non-zero.
 */
import fp from 'fastify-plugin'
import { basename, resolve } from 'node:path'
import type { Config } from '../config/schema.js'
import { EngineClient } from '../engine/engine-client.js'
import { OffThreadEncoder } from '../engine/prompt-encoder.js'
import { TextTokenizer } from '../engine/tokenizer.js'
import { GenerationService, type PrefixResolver } from './generation-service.js'
import { reportRequest } from './metrics-plugin.js'

declare module 'fastify' {
  interface FastifyInstance {
    engine: EngineClient
    generation: GenerationService
    modelId: string
  }
}

export interface EnginePluginOptions {
  config: Config
  modelDir: string
}

export const enginePlugin = fp<EnginePluginOptions>(
  async (app, { config, modelDir }) => {
    const engine = await EngineClient.start({
      modelDir: resolve(modelDir),
      executionProvider: config.EXECUTION_PROVIDER,
      intraOpThreads: config.INTRA_OP_THREADS,
      ortBinding: config.ORT_BINDING,
      loraTargetModules: config.LORA_TARGET_MODULES,
      maxBatchSize: config.MAX_BATCH_SIZE,
      maxBatchTokens: config.MAX_BATCH_TOKENS,
      maxPrefillTokens: config.MAX_PREFILL_TOKENS,
      maxWaiting: config.MAX_WAITING_REQUESTS,
      maxWaitingPerTenant: config.MAX_WAITING_PER_TENANT,
      admissionWaitMs: config.ADMISSION_WAIT_MS,
    })
    let deathReason: string | null = null
    engine.on('died', (reason: string) => {
      deathReason = reason
      app.log.fatal({ reason }, 'engine worker died')
    })
    if (!engine.spec.batchInvariant) {
      const why = engine.spec.quantization ? `it is ${engine.spec.quantization} quantized` : 'its graph handles padded rows in a way prefixd does not recognize'
      app.log.warn({ modelType: engine.spec.modelType }, `the model is not batch-invariant (${why}): a request's tokens may depend on what shares its batch`)
    }
    const tokenizer = await TextTokenizer.load(modelDir, engine.spec.bosTokenId)
    const encoder = await OffThreadEncoder.start(resolve(modelDir), engine.spec.bosTokenId, tokenizer, (reason) =>
      app.log.error({ reason }, 'tokenizer worker died: long prompts are now tokenized on the HTTP thread'),
    )
    app.addHook('onClose', async () => encoder.close())
    // Prefix ids resolve through the prefix store (store-plugin.ts), opened once the engine is up.
    const prefixes: PrefixResolver = { resolve: (id, principal) => app.prefixStore.resolve(id, principal) }
    app.decorate('engine', engine)
    app.decorate('modelId', config.MODEL_ID || basename(resolve(modelDir)))
    app.decorate('generation', new GenerationService(config, engine, encoder, prefixes, (r) => reportRequest(app, r)))
    app.readiness.report('engine', () => (deathReason === null ? null : `the engine stopped: ${deathReason}`))
    app.addHook('onClose', async () => engine.close())
  },
  { name: 'prefixd-engine' },
)
