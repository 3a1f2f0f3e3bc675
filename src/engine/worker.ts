/**
 * The engine worker's entry point: owns the one ONNX Runtime session of the
 * process and runs the step loop. The HTTP thread never runs inference.
 * A load failure is reported as `fatal` and the worker exits: it is never
 * re-created in-process (onnxruntime-node is known to crash when it is).
 */
import { parentPort, workerData } from 'node:worker_threads'
import { flatError, flattenError } from '../domain/error-table.js'
import type { AdapterContribution } from '../domain/adapter-contribution.js'
import { buildPrefill } from './batch/forward-feed.js'
import { probeBatchInvariance } from './batch-invariance-probe.js'
import { EngineLoop, type EngineSink } from './engine-loop.js'
import { ForwardRunner } from './forward-runner.js'
import { Generation } from './generation.js'
import { withLoraTargets } from './graph/lora-rewrite.js'
import { MODEL_REWRITES } from './graph/rewrites.js'
import { loadModel } from './loaded-model.js'
import { readModelSpec } from './model-config.js'
import { isEncoderDecoderFolder } from './seq2seq-spec.js'
import { openSeq2seqEngine } from './seq2seq-engine.js'
import type { ServingEngine } from './serving-engine.js'
import { acceptedContributions } from './onnx-signature.js'
import { PROTOCOL_VERSION, type EngineOptions, type FromWorker, type SubmitMessage, type ToWorker } from './protocol.js'

const port = parentPort!
const send = (msg: FromWorker) => port.postMessage(msg)
const opts = workerData as EngineOptions

/** The decoder-only engine: one session, the KV-state step loop. */
async function openDecoderEngine(sink: EngineSink): Promise<ServingEngine> {
  // LORA_TARGET_MODULES's default (peft) depends on the model type.
  const { modelType } = await readModelSpec(opts.modelDir)
  const model = await loadModel(opts.modelDir, { ...opts, rewrites: withLoraTargets(MODEL_REWRITES, opts.loraTargetModules, modelType) })
  const { spec, tokenizer } = model
  const shape = { numLayers: spec.numLayers, numKvHeads: spec.numKvHeads, headDim: spec.headDim, valueHeadDim: spec.valueHeadDim }
  const runner = new ForwardRunner(model.session, model.signature, shape, model.loraInputs)
  const eos = new Set(spec.eosTokenIds)
  const loop = new EngineLoop(runner, shape, spec.vocabSize, opts, sink)
  loop.setAdmissionWindow(opts.admissionWaitMs ?? 0)
  return {
    spec,
    accepts: [...acceptedContributions(model.signature), ...(model.loraInputs.length > 0 ? (['lora'] as const) : [])],
    loraProjections: model.loraInputs.map(({ key, inFeatures, outFeatures }) => ({ key, inFeatures, outFeatures })),
    submit: (msg, adapters) => loop.submit(new Generation(msg.id, msg.promptIds, adapters, msg.params, spec.vocabSize, eos, tokenizer)),
    cancel: (id) => loop.cancel(id),
    stop: () => loop.stop(),
    warmUp: async () => {
      await runner.run(buildPrefill(shape, [{ id: 0, promptIds: [spec.bosTokenId ?? 0], adapters: [] }]).feed)
      const probeTokens = [spec.bosTokenId ?? 0, 3, 4, 5, 6, 7, 8].map((id) => id % spec.vocabSize)
      return { ...spec, batchInvariant: await probeBatchInvariance(runner, shape, spec.vocabSize, probeTokens) }
    },
  }
}

async function main(): Promise<void> {
  const adapters = new Map<string, AdapterContribution>()
  const sink: EngineSink = {
    tokens: (events, stats) => send({ v: PROTOCOL_VERSION, type: 'tokens', events, stats: { ...stats, prefixesCached: adapters.size } }),
    failed: (id, error) => send({ v: PROTOCOL_VERSION, type: 'failed', id, error }),
    idle: (stats) => send({ v: PROTOCOL_VERSION, type: 'stats', stats: { ...stats, prefixesCached: adapters.size } }),
  }
  // An encoder-decoder folder (config.json is_encoder_decoder) gets its own runner and loop.
  const engine = (await isEncoderDecoderFolder(opts.modelDir)) ? await openSeq2seqEngine(opts, sink) : await openDecoderEngine(sink)

  const submit = (msg: SubmitMessage) => {
    const resolved: AdapterContribution[] = []
    for (const key of msg.adapterKeys) {
      const p = adapters.get(key)
      if (!p) {
        send({ v: PROTOCOL_VERSION, type: 'failed', id: msg.id, error: flatError('PREFIXD_PREFIX_NOT_FOUND', `prefix '${key}' not found`) })
        return
      }
      resolved.push(p)
    }
    try {
      engine.submit(msg, resolved)
    } catch (err) {
      // The sampler's range checks (the HTTP layer validates them first) and the one-LoRA-per-row rule.
      send({ v: PROTOCOL_VERSION, type: 'failed', id: msg.id, error: flatError('PREFIXD_VALIDATION', (err as Error).message) })
    }
  }

  port.on('message', (msg: ToWorker) => {
    if (msg.v !== PROTOCOL_VERSION) return
    switch (msg.type) {
      case 'submit':
        return submit(msg)
      case 'cancel':
        return engine.cancel(msg.id)
      case 'putAdapter':
        adapters.set(msg.key, msg.adapter)
        return
      case 'dropAdapter':
        adapters.delete(msg.key)
        return
      case 'shutdown':
        // Finish the forward pass in progress, then end the thread cleanly.
        void engine.stop().then(() => process.exit(0))
        return
    }
  })
  // Warm-up: the first run of a session allocates and plans; pay that before
  // the server says it is ready, not on a user's first request.
  const spec = await engine.warmUp()
  send({ v: PROTOCOL_VERSION, type: 'ready', spec, accepts: engine.accepts, loraProjections: engine.loraProjections ?? [] })
}

main().catch((err: unknown) => {
  send({ v: PROTOCOL_VERSION, type: 'fatal', error: flattenError(err) })
  process.exit(1)
})
