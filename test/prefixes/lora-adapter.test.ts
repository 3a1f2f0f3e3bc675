/**
 * PEFT LoRA files: the real lora-bird-kiki read exactly (Aᵀ and s·Bᵀ against
 * the raw bytes, s = alpha/r or alpha/√r), and every refusal the issue names,
 * each a 4xx whose message says why: DoRA, modules_to_save, bias training,
 * modules the model does not have, misfit shapes, non-finite values, pickles.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { InvalidPrefixError, PrefixShapeMismatchError } from '../../src/errors.js'
import { parseLoraConfig } from '../../src/prefixes/lora-config.js'
import { checkLoraFitsModel, loraAdapterBytes, readLoraAdapter, type LoraProjection } from '../../src/prefixes/lora-adapter.js'
import { moduleKeyOf } from '../../src/domain/lora-module-key.js'
import { readNativeLora, writeNativeLora } from '../../src/prefixes/lora-native.js'
import { serializeSafetensors, type TensorToWrite } from '../../src/prefixes/safetensors.js'

const KIKI = new URL('../fixtures/adapters/stories260K/lora-bird-kiki/', import.meta.url)
const kikiConfig = JSON.parse(readFileSync(new URL('adapter_config.json', KIKI), 'utf8')) as Record<string, unknown>
const kikiWeights = readFileSync(new URL('adapter_model.safetensors', KIKI))

/** The raw tensors, read by hand (no src/ code): name → shape and float32 values. */
function rawTensors(bytes: Buffer): Map<string, { shape: number[]; values: Float32Array }> {
  const n = Number(bytes.readBigUInt64LE(0))
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { shape: number[]; data_offsets: [number, number] }>
  const out = new Map<string, { shape: number[]; values: Float32Array }>()
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue
    const values = new Float32Array((e.data_offsets[1] - e.data_offsets[0]) / 4)
    for (let i = 0; i < values.length; i++) values[i] = bytes.readFloatLE(8 + n + e.data_offsets[0] + 4 * i)
    out.set(name, { shape: e.shape, values })
  }
  return out
}
const raw = rawTensors(kikiWeights)

/** stories260K's projections (its README): hidden 64, 4 KV heads of 8, MLP 172, 5 layers. */
const STORIES: LoraProjection[] = Array.from({ length: 5 }, (_, i) => [
  { key: `layers.${i}.self_attn.q_proj`, inFeatures: 64, outFeatures: 64 },
  { key: `layers.${i}.self_attn.k_proj`, inFeatures: 64, outFeatures: 32 },
  { key: `layers.${i}.self_attn.v_proj`, inFeatures: 64, outFeatures: 32 },
  { key: `layers.${i}.self_attn.o_proj`, inFeatures: 64, outFeatures: 64 },
  { key: `layers.${i}.mlp.gate_proj`, inFeatures: 64, outFeatures: 172 },
  { key: `layers.${i}.mlp.up_proj`, inFeatures: 64, outFeatures: 172 },
  { key: `layers.${i}.mlp.down_proj`, inFeatures: 172, outFeatures: 64 },
]).flat()

function f32(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength))
}

/** kiki's tensors re-serialized, after `change` edits the list (rename, reshape, drop, add). */
function kikiWith(change: (tensors: Record<string, TensorToWrite>) => void): Buffer {
  const tensors: Record<string, TensorToWrite> = {}
  for (const [name, t] of raw) tensors[name] = { dtype: 'F32', shape: t.shape, data: f32(t.values) }
  change(tensors)
  return serializeSafetensors(tensors)
}

const Q0 = 'base_model.model.model.layers.0.self_attn.q_proj'

t.test('module keys: the path from the layer list on', async (t) => {
  t.equal(moduleKeyOf('model.layers.0.self_attn.q_proj'), 'layers.0.self_attn.q_proj')
  t.equal(moduleKeyOf('model.model.layers.12.mlp.down_proj'), 'layers.12.mlp.down_proj')
  t.equal(moduleKeyOf('transformer.h.3.attn.c_proj'), 'h.3.attn.c_proj')
  t.equal(moduleKeyOf('transformer.h.3.mlp.c_proj'), 'h.3.mlp.c_proj')
  t.equal(moduleKeyOf('lm_head'), null, 'not inside a numbered layer')
  t.equal(moduleKeyOf('model.layers.3'), null, 'a layer itself is not a projection')
})

t.test('lora-bird-kiki reads exactly, scaled as PEFT scales', async (t) => {
  const adapter = readLoraAdapter(JSON.stringify(kikiConfig), kikiWeights)
  t.equal(adapter.rank, 4)
  t.equal(adapter.config.scaling, 2, 'lora_alpha 8 / r 4')
  t.equal(adapter.dtype, 'F32')
  t.equal(adapter.modules.length, 10, 'q_proj and v_proj in 5 layers')
  checkLoraFitsModel(adapter, STORIES)
  let mismatches = 0
  for (const m of adapter.modules) {
    const A = raw.get(`base_model.model.model.${m.key}.lora_A.weight`)!
    const B = raw.get(`base_model.model.model.${m.key}.lora_B.weight`)!
    t.same([m.inFeatures, m.outFeatures], [A.shape[1], B.shape[0]], m.key)
    // a[i][r] = A[r][i]; b[r][o] = 2 · B[o][r]
    for (let r = 0; r < 4; r++) {
      for (let i = 0; i < m.inFeatures; i++) if (m.a[i * 4 + r] !== A.values[r * m.inFeatures + i]) mismatches++
      for (let o = 0; o < m.outFeatures; o++) if (m.b[r * m.outFeatures + o] !== 2 * B.values[o * 4 + r]) mismatches++
    }
  }
  t.equal(mismatches, 0, 'every value is the file’s, transposed (B scaled by 2)')
  t.equal(loraAdapterBytes(adapter), 4 * 5 * 4 * (64 + 64 + 64 + 32), 'memory: A and B of 10 modules, float32')
})

t.test('scaling: alpha/r, or alpha/sqrt(r) with rsLoRA', async (t) => {
  t.equal(parseLoraConfig({ ...kikiConfig, r: 16, lora_alpha: 8 }).scaling, 0.5)
  t.equal(parseLoraConfig({ ...kikiConfig, r: 16, lora_alpha: 8, use_rslora: true }).scaling, 2)
  const rs = readLoraAdapter({ ...kikiConfig, use_rslora: true }, kikiWeights)
  const plain = readLoraAdapter(kikiConfig, kikiWeights)
  t.equal(rs.modules[0].b[5], plain.modules[0].b[5] * 2, 'rsLoRA doubles the scale at r 4 (8/2 vs 8/4)')
  t.same(rs.modules[0].a, plain.modules[0].a, 'A is never scaled')
})

t.test('refused configs name the reason (422)', async (t) => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['DoRA', { use_dora: true }, /DoRA/],
    ['modules_to_save', { modules_to_save: ['lm_head'] }, /modules_to_save/],
    ['bias all', { bias: 'all' }, /bias "all"/],
    ['bias lora_only', { bias: 'lora_only' }, /bias "lora_only"/],
    ['lora_bias', { lora_bias: true }, /lora_bias/],
    ['rank_pattern', { rank_pattern: { q_proj: 8 } }, /rank_pattern/],
    ['alpha_pattern', { alpha_pattern: { q_proj: 8 } }, /alpha_pattern/],
    ['activated LoRA', { alora_invocation_tokens: [5] }, /alora_invocation_tokens/],
    ['prefix tuning', { peft_type: 'PREFIX_TUNING' }, /PREFIX_TUNING.*not "LORA"/],
    ['no r', { r: undefined }, /"r"/],
    ['r 0', { r: 0 }, /"r" is 0/],
    ['alpha not a number', { lora_alpha: 'eight' }, /lora_alpha/],
    ['no target modules', { target_modules: [] }, /target_modules/],
    ['seq-cls task', { task_type: 'SEQ_CLS' }, /SEQ_CLS/],
  ]
  for (const [label, change, message] of cases) {
    t.throws(() => parseLoraConfig({ ...kikiConfig, ...change }), { code: 'PREFIXD_INVALID_PREFIX', statusCode: 422, message }, label)
  }
  t.throws(() => parseLoraConfig('{nope'), InvalidPrefixError)
  // Options that do not change the unmerged forward are accepted.
  t.doesNotThrow(() => parseLoraConfig({ ...kikiConfig, fan_in_fan_out: true, lora_dropout: 0.1, layers_to_transform: [0, 1] }))
})

t.test('refused weights name the reason (422)', async (t) => {
  const cases: Array<[string, (x: Record<string, TensorToWrite>) => void, RegExp]> = [
    ['lora_B missing', (x) => delete x[`${Q0}.lora_B.weight`], /has lora_A but no lora_B/],
    ['DoRA magnitude', (x) => (x[`${Q0}.lora_magnitude_vector`] = { dtype: 'F32', shape: [64], data: new Uint8Array(256) }), /DoRA/],
    ['module copy', (x) => (x['base_model.model.lm_head.modules_to_save.default.weight'] = { dtype: 'F32', shape: [1], data: new Uint8Array(4) }), /module_to_save/],
    ['trained bias', (x) => (x[`${Q0}.base_layer.bias`] = { dtype: 'F32', shape: [64], data: new Uint8Array(256) }), /bias/],
    ['rank 3 vs r 4', (x) => {
      x[`${Q0}.lora_A.weight`] = { dtype: 'F32', shape: [3, 64], data: new Uint8Array(3 * 64 * 4) }
    }, /rank 3/],
    ['NaN', (x) => {
      const v = new Float32Array(raw.get(`${Q0}.lora_B.weight`)!.values)
      v[7] = NaN
      x[`${Q0}.lora_B.weight`] = { dtype: 'F32', shape: [64, 4], data: f32(v) }
    }, /NaN or infinite/],
    ['Infinity', (x) => {
      const v = new Float32Array(raw.get(`${Q0}.lora_A.weight`)!.values)
      v[0] = -Infinity
      x[`${Q0}.lora_A.weight`] = { dtype: 'F32', shape: [4, 64], data: f32(v) }
    }, /NaN or infinite/],
    ['int weights', (x) => {
      x[`${Q0}.lora_A.weight`] = { dtype: 'I32', shape: [4, 64], data: new Uint8Array(4 * 64 * 4) }
    }, /dtype I32/],
  ]
  for (const [label, change, message] of cases) {
    t.throws(() => readLoraAdapter(kikiConfig, kikiWith(change)), { code: 'PREFIXD_INVALID_PREFIX', statusCode: 422, message }, label)
  }
  const pickle = Buffer.from([0x80, 0x04, 0x95, 0, 0, 0, 0, 0, 0, 0])
  t.throws(() => readLoraAdapter(kikiConfig, pickle), { code: 'PREFIXD_INVALID_PREFIX', message: /pickle/ })
})

t.test('an adapter that does not fit the model is refused with each mismatch named', async (t) => {
  const kiki = readLoraAdapter(kikiConfig, kikiWeights)
  const mismatch = (projections: LoraProjection[], config = kikiConfig) => () =>
    checkLoraFitsModel(readLoraAdapter(config, kikiWeights), projections, 'kiki')
  t.throws(mismatch(STORIES.filter((p) => !p.key.endsWith('v_proj'))), {
    code: 'PREFIXD_PREFIX_SHAPE_MISMATCH',
    statusCode: 422,
    message: /LoRA adapter 'kiki' targets 'v_proj', which the model does not have or takes no LoRA on \(LoRA can target: q_proj, k_proj, o_proj/,
  })
  t.throws(mismatch(STORIES.map((p) => (p.key.endsWith('q_proj') ? { ...p, outFeatures: 128 } : p))), {
    message: /'layers\.0\.self_attn\.q_proj' is 64 → 64, the model's is 64 → 128/,
  })
  t.throws(mismatch(STORIES.filter((p) => p.key !== 'layers.4.self_attn.q_proj')), {
    message: /weights for 'layers\.4\.self_attn\.q_proj', which the model does not have/,
  })
  t.throws(mismatch(STORIES, { ...kikiConfig, target_modules: ['q_proj', 'v_proj', 'w_proj'] }), {
    message: /targets 'w_proj', which the model does not have/,
  })
  t.throws(() => checkLoraFitsModel(kiki, []), PrefixShapeMismatchError, 'a model without projections serves no LoRA')
})

t.test('the stored form (prefixd.lora) reads back exactly what was written', async (t) => {
  const kiki = readLoraAdapter(kikiConfig, kikiWeights)
  const blob = writeNativeLora(kiki, { modelFingerprint: 'sha256:abc' })
  const back = readNativeLora(blob)
  t.equal(back.modelFingerprint, 'sha256:abc')
  t.same(back.adapter.config, kiki.config)
  t.same(back.adapter.modules.map((m) => m.key), kiki.modules.map((m) => m.key))
  t.ok(back.adapter.modules.every((m, i) => m.a.every((v, j) => v === kiki.modules[i].a[j]) && m.b.every((v, j) => v === kiki.modules[i].b[j])), 'every value bit for bit')
  const header = Number(blob.readBigUInt64LE(0))
  const tampered = Buffer.from(blob)
  tampered.write(blob.subarray(8, 8 + header).toString('latin1').replace('"rank":"4"', '"rank":"5"'), 8, 'latin1')
  t.throws(() => readNativeLora(tampered), { code: 'PREFIXD_INVALID_PREFIX', message: /for rank 5/ })
  t.throws(() => readNativeLora(kikiWeights), { message: /"format" is "pt"/ }, 'a PEFT file is not the stored form')
})
