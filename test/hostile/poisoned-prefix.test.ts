/**
 * A prefix whose values are finite but huge (3e38) makes its rows' logits
 * non-finite. That must end those requests alone, with 422 invalid_prefix,
 * while the healthy rows of the same batch finish with exactly the tokens they
 * get alone; and such a prefix is refused at upload.
 */
import t from 'tap'
import { EngineClient } from '../../src/engine/engine-client.js'
import type { GenerationParams, TokenEvent } from '../../src/engine/protocol.js'
import type { CodedError } from '../../src/domain/error-table.js'
import { NON_FINITE_PREFIX_MESSAGE } from '../../src/engine/row-failure.js'
import { MAX_PREFIX_ABS_VALUE } from '../../src/prefixes/magnitude-bound.js'
import type { PrefixKV } from '../../src/domain/prefix-kv.js'
import { parseUpload, toStoredBlob } from '../../src/prefixes/store/upload-conversion.js'
import { greedyParams } from '../helpers/engine-params.js'
import { engineOptions } from '../helpers/batching-models.js'
import { buildPeftAdapter, seededFloats } from '../helpers/prefix-fixtures.js'
import { generatedModel } from '../helpers/tiny-model.js'

type Outcome = { tokens: number[] } | { error: CodedError }

function generate(engine: EngineClient, promptIds: number[], prefixKeys: string[], params: GenerationParams, onToken?: (e: TokenEvent) => void) {
  return new Promise<Outcome>((resolve) => {
    const tokens: number[] = []
    engine.submit(promptIds, prefixKeys, params, {
      onToken: (e) => {
        tokens.push(e.token.id)
        onToken?.(e)
        if (e.finish) resolve({ tokens })
      },
      onError: (error) => resolve({ error }),
    })
  })
}

function prefixOf(shape: { numLayers: number; numKvHeads: number; headDim: number }, P: number, fill: (i: number) => Float32Array): PrefixKV {
  const layers = (seed: number) => Array.from({ length: shape.numLayers }, (_, i) => fill(seed + i))
  return { numVirtualTokens: P, ...shape, keys: layers(1), values: layers(100) }
}

const modelDir = await generatedModel('llama')
const engine = await EngineClient.start(engineOptions(modelDir, { maxBatchSize: 16, maxPrefillTokens: 4096 }))
t.teardown(() => engine.close())
const shape = { numLayers: engine.spec.numLayers, numKvHeads: engine.spec.numKvHeads, headDim: engine.spec.headDim }
const perLayer = shape.numKvHeads * 4 * shape.headDim
engine.putAdapter('good', { kind: 'past_kv', prefix: prefixOf(shape, 4, (seed) => seededFloats(perLayer, seed)) })
engine.putAdapter('poison', { kind: 'past_kv', prefix: prefixOf(shape, 4, () => new Float32Array(perLayer).fill(3e38)) })

const healthy: Array<[number[], string[]]> = [
  [[1, 5, 9, 13], []],
  [[1, 7, 7, 2, 40], ['good']],
  [[1, 100], ['good']],
]

t.test('a poisoned row fails alone; the healthy rows of its batch keep their exact tokens', async (t) => {
  const alone: number[][] = []
  for (const [prompt, keys] of healthy) {
    const r = await generate(engine, prompt, keys, greedyParams(12))
    if (!('tokens' in r)) throw new Error(`healthy request failed alone: ${r.error.message}`)
    alone.push(r.tokens)
  }
  // One poisoned row is admitted with the healthy ones (the prefill pass);
  // another joins while they decode (a decode pass).
  let late: Promise<Outcome> | null = null
  const together = healthy.map(([prompt, keys], i) =>
    generate(engine, prompt, keys, greedyParams(12), (e) => {
      if (i === 0 && late === null && e.token && !e.finish) late = generate(engine, [1, 3], ['poison'], greedyParams(12))
    }),
  )
  const early = generate(engine, [1, 3, 4], ['poison', 'good'], greedyParams(12))
  const results = await Promise.all(together)
  t.same(results, alone.map((tokens) => ({ tokens })), 'healthy rows: the same tokens as alone')
  for (const [what, p] of [['admitted with the batch', early], ['joined while decoding', late!]] as const) {
    const r = await p
    t.ok('error' in r, `${what}: the poisoned request failed`)
    if ('error' in r) {
      t.equal(r.error.code, 'PREFIXD_INVALID_PREFIX', what)
      t.equal(r.error.statusCode, 422, what)
      t.equal(r.error.message, NON_FINITE_PREFIX_MESSAGE, what)
    }
  }
  t.ok(engine.ready, 'the engine is still alive')
  const after = await generate(engine, healthy[1][0], healthy[1][1], greedyParams(12))
  t.same(after, { tokens: alone[1] }, 'and still serves the same tokens')
})

t.test('uploads refuse a prefix whose values cannot be served', async (t) => {
  const model = { spec: engine.spec, accepts: engine.accepts }
  const adapter = (fill: number) => {
    const a = buildPeftAdapter({ layers: shape.numLayers, kvHeads: shape.numKvHeads, headDim: shape.headDim, P: 2 })
    const e = buildPeftAdapter({ layers: shape.numLayers, kvHeads: shape.numKvHeads, headDim: shape.headDim, P: 2, embeddings: a.embeddings.map((x, i) => (i === 5 ? fill : x)) })
    return parseUpload([{ filename: 'adapter_config.json', data: Buffer.from(e.configJson) }, { filename: 'adapter_model.safetensors', data: e.safetensors }], 1 << 20)
  }
  t.throws(() => toStoredBlob(adapter(3e38), model, 'huge'), { code: 'PREFIXD_INVALID_PREFIX', message: /cannot be served: keys\[0\] holds 3\.0000000\d*e\+38 at flat index 5; every value must lie within ±65504/ })
  t.throws(() => toStoredBlob(adapter(-MAX_PREFIX_ABS_VALUE * 2), model, 'neg'), { code: 'PREFIXD_INVALID_PREFIX' }, 'negative values too')
  t.doesNotThrow(() => toStoredBlob(adapter(MAX_PREFIX_ABS_VALUE), model, 'edge'), 'the bound itself is accepted')
})
