/**
 * Model folders as they come: the ONNX signature is read from the session's
 * metadata (optional inputs, per-layer past/present names) and checked
 * against config.json; the merged decoder's file name loads too.
 */
import t from 'tap'
import { mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildDecode, buildPrefill } from '../../src/engine/batch/forward-feed.js'
import { compact, prefillState } from '../../src/engine/batch/kv-state.js'
import { findModelFile } from '../../src/engine/onnx-session.js'
import { readSignature, type TensorMeta } from '../../src/engine/onnx-signature.js'
import { readModelSpec, specFromConfig } from '../../src/engine/model-config.js'
import { ALIBI_DEFAULT_MAX_POSITIONS } from '../../src/engine/model-families.js'
import { loadModel } from '../../src/engine/loaded-model.js'
import { generatedModel } from '../helpers/tiny-model.js'
import { zoo } from '../helpers/zoo.js'

const spec = specFromConfig({ model_type: 'llama', num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, hidden_size: 64, vocab_size: 512, max_position_embeddings: 256 })
const tensor = (name: string, shape: Array<number | string> = []): TensorMeta => ({ name, isTensor: true, type: 'float32', shape })
const past = (layers: number, heads: number | string = 'h', dim: number | string = 'd') =>
  Array.from({ length: layers }, (_, i) => [tensor(`past_key_values.${i}.key`, ['b', heads, 'p', dim]), tensor(`past_key_values.${i}.value`, ['b', heads, 'p', dim])]).flat()
const present = (layers: number) => Array.from({ length: layers }, (_, i) => [tensor(`present.${i}.key`), tensor(`present.${i}.value`)]).flat()

t.test('the signature: optional inputs and per-layer names', async (t) => {
  const merged = readSignature([tensor('input_ids'), tensor('attention_mask'), tensor('use_cache_branch'), ...past(2)], [tensor('logits'), ...present(2)], spec)
  t.equal(merged.hasPositionIds, false, 'position_ids may be absent')
  t.equal(merged.hasUseCacheBranch, true, "the merged decoder's branch input is seen")
  t.same(merged.pastKeys, ['past_key_values.0.key', 'past_key_values.1.key'])
  t.same(merged.presentValues, ['present.0.value', 'present.1.value'])
  const plain = readSignature([tensor('input_ids'), tensor('attention_mask'), tensor('position_ids'), ...past(2, 2, 16)], [tensor('logits'), ...present(2)], spec)
  t.equal(plain.hasPositionIds, true)
  t.equal(plain.hasUseCacheBranch, false)
})

t.test('a signature that disagrees with config.json is refused at load', async (t) => {
  const inputs = [tensor('input_ids'), tensor('attention_mask')]
  t.throws(() => readSignature(inputs, [tensor('logits'), ...present(2)], spec), /lacks past_key_values inputs for layer 0/)
  t.throws(() => readSignature([...inputs, ...past(3)], [tensor('logits'), ...present(3)], spec), /3 layers, config.json says 2/)
  t.throws(() => readSignature([...inputs, ...past(2, 4)], [tensor('logits'), ...present(2)], spec), /key\/value heads 4, config.json implies 2/)
  t.throws(() => readSignature([...inputs, ...past(2, 2, 8)], [tensor('logits'), ...present(2)], spec), /head size 8, config.json implies 16/)
  t.throws(() => readSignature([tensor('input_ids'), ...past(2)], [tensor('logits'), ...present(2)], spec), /no 'attention_mask' input/)
  t.throws(() => readSignature([...inputs, ...past(2)], present(2), spec), /no 'logits' output/)
  t.throws(() => specFromConfig({ num_hidden_layers: 2 }), /attention head count/)
})

t.test('decoder_model_merged.onnx is found and loads', async (t) => {
  const source = await generatedModel('llama')
  const dir = mkdtempSync(join(tmpdir(), 'prefixd-merged-name-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const name of readdirSync(source)) {
    symlinkSync(join(source, name), join(dir, name === 'model.onnx' ? 'decoder_model_merged.onnx' : name))
  }
  t.equal(await findModelFile(dir), join(dir, 'decoder_model_merged.onnx'))
  const model = await loadModel(dir, { executionProvider: 'cpu', intraOpThreads: 1 })
  t.equal(model.spec.numLayers, 2)
  t.equal(model.signature.hasPositionIds, true)
  await t.rejects(findModelFile(tmpdir() + '/prefixd-nowhere'), /no model.onnx or decoder_model_merged.onnx/)
})

t.test('config readers: every family names its shape its own way', async (t) => {
  const base = { vocab_size: 512, hidden_size: 64 }
  const neo = specFromConfig({ ...base, model_type: 'gpt_neo', num_layers: 2, num_heads: 4, max_position_embeddings: 256 })
  t.same([neo.numLayers, neo.numAttentionHeads, neo.numKvHeads, neo.headDim], [2, 4, 4, 16], 'gpt_neo: num_layers, num_heads')
  const mpt = specFromConfig({ model_type: 'mpt', vocab_size: 512, n_layers: 3, n_heads: 8, d_model: 128, max_seq_len: 512 })
  t.same([mpt.numLayers, mpt.numAttentionHeads, mpt.hiddenSize, mpt.headDim, mpt.maxPositions], [3, 8, 128, 16, 512], 'MPT: n_layers, n_heads, d_model, max_seq_len')
  t.match(mpt.prefixRefusal, /MPT/)
  const mptGqa = specFromConfig({ model_type: 'mpt', vocab_size: 512, n_layers: 3, n_heads: 8, d_model: 128, max_seq_len: 512, attn_config: { kv_n_heads: 2 } })
  t.equal(mptGqa.numKvHeads, 2, "MPT's nested attn_config.kv_n_heads")

  const falcon = { ...base, model_type: 'falcon', num_hidden_layers: 2, num_attention_heads: 4, num_kv_heads: 4, max_position_embeddings: 256 }
  const multiQuery = specFromConfig({ ...falcon, multi_query: true })
  t.equal(multiQuery.numKvHeads, 1, 'multi_query: one key/value head, whatever num_kv_heads says')
  t.match(multiQuery.prefixRefusal, /multi_query/)
  const newArch = specFromConfig({ ...falcon, multi_query: true, new_decoder_architecture: true, num_kv_heads: 2 })
  t.equal(newArch.numKvHeads, 2, 'the new decoder architecture uses num_kv_heads')
  t.equal(newArch.prefixRefusal, null)
  t.equal(specFromConfig({ ...falcon, multi_query: false }).numKvHeads, 4)
  t.equal(specFromConfig({ ...falcon, multi_query: false }).prefixRefusal, null)

  const bloom = { ...base, model_type: 'bloom', n_layer: 2, n_head: 4 }
  t.equal(specFromConfig(bloom).maxPositions, ALIBI_DEFAULT_MAX_POSITIONS, 'ALiBi without a limit: the documented cap')
  t.equal(specFromConfig({ ...bloom, seq_length: 4096 }).maxPositions, 4096, 'a stated training length wins')
  t.throws(() => specFromConfig({ ...base, model_type: 'llama', num_hidden_layers: 2, num_attention_heads: 4 }), /maximum position count/, 'rotary models must state a limit')

  const deepseek = specFromConfig({
    ...base, model_type: 'deepseek_v3', num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 4,
    max_position_embeddings: 256, qk_nope_head_dim: 16, qk_rope_head_dim: 8, v_head_dim: 16, kv_lora_rank: 32,
  })
  t.same([deepseek.headDim, deepseek.valueHeadDim], [24, 16], 'keys of nope + rope size, values of v_head_dim')
  t.match(deepseek.prefixRefusal, /latent attention/)
  const llama = specFromConfig({ ...base, model_type: 'llama', num_hidden_layers: 2, num_attention_heads: 4, max_position_embeddings: 256 })
  t.equal(llama.valueHeadDim, llama.headDim)
  t.equal(llama.prefixRefusal, null)
})

t.test('the zoo configs read as their graphs are shaped', async (t) => {
  const expectations: Record<string, [number, number, number]> = { falcon: [4, 1, 256], bloom: [4, 4, ALIBI_DEFAULT_MAX_POSITIONS], gpt_neo: [4, 4, 256], gemma: [4, 1, 256] }
  for (const [family, [heads, kvHeads, positions]] of Object.entries(expectations)) {
    const spec = await readModelSpec(join(zoo, family, 'model'))
    t.same([spec.numAttentionHeads, spec.numKvHeads, spec.maxPositions], [heads, kvHeads, positions], family)
  }
  const values = [tensor('past_key_values.0.key', ['b', 4, 'p', 24]), tensor('past_key_values.0.value', ['b', 4, 'p', 8])]
  const mla = specFromConfig({ model_type: 'deepseek_v3', vocab_size: 512, hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 4, max_position_embeddings: 256, qk_nope_head_dim: 16, qk_rope_head_dim: 8, v_head_dim: 16 })
  t.throws(() => readSignature([tensor('input_ids'), tensor('attention_mask'), ...values], [tensor('logits'), tensor('present.0.key'), tensor('present.0.value')], mla), /value head size 8, config.json implies 16/)
})

t.test('keys and values of different head sizes (latent attention) batch and re-pack each at its own size', async (t) => {
  const shape = { numLayers: 1, numKvHeads: 2, headDim: 3, valueHeadDim: 2 }
  const { feed, state } = buildPrefill(shape, [
    { id: 1, promptIds: [5, 6, 7], adapters: [] },
    { id: 2, promptIds: [8], adapters: [] },
  ])
  t.equal(feed.pastValues[0].length, 0)
  // The model's present: row r, head h, slot s holds 100r + 10h + s + d/10 (d the element within the head).
  const present = (size: number) => {
    const out = new Float32Array(2 * 2 * 3 * size)
    for (let r = 0; r < 2; r++) for (let h = 0; h < 2; h++) for (let s = 0; s < 3; s++) for (let d = 0; d < size; d++) out[((r * 2 + h) * 3 + s) * size + d] = 100 * r + 10 * h + s + d / 10
    return out
  }
  // No past: the pass's new columns are all of present.
  const full = prefillState(shape, feed, state.rowIds, state.nextPosition, [present(3)], [present(2)])
  // Row 2's prompt was left-padded: slots 0 and 1 are holes that re-packing drops.
  const packed = compact(shape, [{ state: full, row: 1 }])
  t.equal(packed.length, 1)
  const C = packed.capacity
  const f32 = (xs: number[]) => xs.map(Math.fround)
  const head = (buf: Float32Array, h: number, size: number) => [...buf.subarray(h * C * size, h * C * size + size)]
  t.same([...head(packed.keys[0], 0, 3), ...head(packed.keys[0], 1, 3)], f32([102, 102.1, 102.2, 112, 112.1, 112.2]), 'keys keep three elements per head')
  t.same([...head(packed.values[0], 0, 2), ...head(packed.values[0], 1, 2)], f32([102, 102.1, 112, 112.1]), 'values keep two')
  const decode = buildDecode(packed, [9])
  t.same([decode.pastValues[0].length, decode.pastKeys[0].length], [2 * C * 2, 2 * C * 3])
})
