/**
 * PEFT SEQ_2_SEQ_LM prefix adapters: the layer mapping PEFT 0.21 applies
 * (decoder layer i ← slices 2j, 2j+1 with j = 2i mod L; verified in the shared
 * data's seq2seq README), read from real and built adapters; the architecture
 * a PEFT config declares; and the store refusing a prefix made for the other
 * kind of model, both ways, with a 422 naming the mismatch.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ModelSpec } from '../../src/domain/model-spec.js'
import { seq2seqSpecFromConfig } from '../../src/engine/seq2seq-spec.js'
import { parsePeftConfig, readPeftAdapter } from '../../src/prefixes/peft-adapter.js'
import { layerSlices } from '../../src/prefixes/seq2seq-layer-mapping.js'
import { parseUpload, toStoredBlob } from '../../src/prefixes/store/upload-conversion.js'
import { buildPeftAdapter } from '../helpers/prefix-fixtures.js'
import { SEQ2SEQ_FIXTURES } from '../helpers/seq2seq-data.js'

const SEQ2SEQ_CONFIG = { task_type: 'SEQ_2_SEQ_LM', num_transformer_submodules: 2 }

t.test('layer mapping: the slices PEFT gives each decoder layer, for L = 1..4', async (t) => {
  const keysOf = (L: number) => Array.from({ length: L }, (_, i) => layerSlices(i, L, 'encoder-decoder').key)
  t.same(keysOf(1), [0])
  t.same(keysOf(2), [0, 0])
  t.same(keysOf(3), [0, 4, 2])
  t.same(keysOf(4), [0, 4, 0, 4])
  t.same(layerSlices(2, 3, 'encoder-decoder'), { key: 2, value: 3 })
  t.same(layerSlices(2, 3, 'decoder-only'), { key: 4, value: 5 }, 'decoder-only keeps layer i ← 2i, 2i + 1')
})

t.test('a built 3-layer seq2seq adapter: each layer holds the slices the mapping names', async (t) => {
  const [L, H, D, P] = [3, 2, 4, 3]
  const fx = buildPeftAdapter({ layers: L, kvHeads: H, headDim: D, P, config: SEQ2SEQ_CONFIG })
  const { prefix, config } = readPeftAdapter(fx.configJson, fx.safetensors)
  t.equal(config.architecture, 'encoder-decoder')
  // prompt_embeddings [P, 2L, H, D]: slice s, head h, token p starts at (p * 2L + s) * H * D + h * D.
  const at = (s: number, h: number, p: number) => fx.embeddings.subarray((p * 2 * L + s) * H * D + h * D, (p * 2 * L + s) * H * D + (h + 1) * D)
  for (let layer = 0; layer < L; layer++) {
    const { key, value } = layerSlices(layer, L, 'encoder-decoder')
    for (let h = 0; h < H; h++) {
      for (let p = 0; p < P; p++) {
        const got = (data: Float32Array) => [...data.subarray((h * P + p) * D, (h * P + p + 1) * D)]
        t.same(got(prefix.keys[layer]), [...at(key, h, p)], `layer ${layer} key, head ${h}, token ${p}`)
        t.same(got(prefix.values[layer]), [...at(value, h, p)], `layer ${layer} value, head ${h}, token ${p}`)
      }
    }
  }
})

t.test('the real bart-toy adapter: both decoder layers share slices 0 and 1', async (t) => {
  const fx = SEQ2SEQ_FIXTURES[0]
  const read = (f: string) => readFileSync(join(fx.adapterDir, f))
  const { prefix } = readPeftAdapter(read('adapter_config.json'), read('adapter_model.safetensors'))
  t.equal(prefix.numLayers, 2)
  t.same([...prefix.keys[1]], [...prefix.keys[0]])
  t.same([...prefix.values[1]], [...prefix.values[0]])
  t.notSame([...prefix.keys[0]], [...prefix.values[0]])
})

t.test('declared architecture: task type and submodules must agree', async (t) => {
  const base = { peft_type: 'PREFIX_TUNING', num_virtual_tokens: 4, num_layers: 2, num_attention_heads: 4, token_dim: 64 }
  t.equal(parsePeftConfig({ ...base, task_type: 'CAUSAL_LM' }).architecture, 'decoder-only')
  t.equal(parsePeftConfig({ ...base, ...SEQ2SEQ_CONFIG }).architecture, 'encoder-decoder')
  t.equal(parsePeftConfig({ ...base, task_type: 'SEQ_2_SEQ_LM' }).architecture, 'encoder-decoder')
  t.throws(() => parsePeftConfig({ ...base, task_type: 'SEQ_2_SEQ_LM', num_transformer_submodules: 1 }), /"num_transformer_submodules" is 1 for task_type "SEQ_2_SEQ_LM"/)
})

t.test('store: a prefix for the other kind of model is a 422 naming both kinds', async (t) => {
  const bart = SEQ2SEQ_FIXTURES[0]
  const seq2seqSpec = seq2seqSpecFromConfig(JSON.parse(readFileSync(join(bart.modelDir, 'config.json'), 'utf8')))
  const decoderSpec: ModelSpec = { ...seq2seqSpec, modelType: 'llama', architecture: undefined, decoderStartTokenId: undefined }
  const upload = (config: Record<string, unknown>) => {
    const fx = buildPeftAdapter({ layers: 2, kvHeads: 4, headDim: 16, P: 4, config })
    return parseUpload([{ filename: 'adapter_config.json', data: Buffer.from(fx.configJson) }, { filename: 'adapter_model.safetensors', data: fx.safetensors }], 1 << 20)
  }
  const seq2seqPrefix = upload(SEQ2SEQ_CONFIG)
  const causalPrefix = upload({})
  const served = (spec: ModelSpec) => ({ spec, accepts: new Set(['past_kv'] as const) })
  t.equal(toStoredBlob(seq2seqPrefix, served(seq2seqSpec), 'ok').shape.num_layers, 2)
  t.equal(toStoredBlob(causalPrefix, served(decoderSpec), 'ok').shape.num_layers, 2)
  t.throws(() => toStoredBlob(seq2seqPrefix, served(decoderSpec), 'ed'), { statusCode: 422, message: "prefix 'ed' was trained for an encoder-decoder model; this server's model is decoder-only" })
  t.throws(() => toStoredBlob(causalPrefix, served(seq2seqSpec), 'do'), { statusCode: 422, message: "prefix 'do' was trained for a decoder-only model; this server's model is encoder-decoder" })
})

t.test('spec of an encoder-decoder config: the decoder side, and T5 without a position table', async (t) => {
  const read = (i: number) => JSON.parse(readFileSync(join(SEQ2SEQ_FIXTURES[i].modelDir, 'config.json'), 'utf8')) as Record<string, unknown>
  t.match(seq2seqSpecFromConfig(read(0)), { modelType: 'bart', numLayers: 2, numKvHeads: 4, headDim: 16, maxPositions: 64, decoderStartTokenId: 2, bosTokenId: 1 })
  t.match(seq2seqSpecFromConfig(read(1)), { modelType: 't5', numLayers: 2, numKvHeads: 4, headDim: 16, maxPositions: 512, decoderStartTokenId: 0, bosTokenId: null })
  t.throws(() => seq2seqSpecFromConfig({ ...read(0), decoder_start_token_id: undefined }), /no decoder_start_token_id/)
})
