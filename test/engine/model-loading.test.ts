/**
 * Model folders as they come: the ONNX signature is read from the session's
 * metadata (optional inputs, per-layer past/present names) and checked
 * against config.json; the merged decoder's file name loads too.
 */
import t from 'tap'
import { mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findModelFile } from '../../src/engine/onnx-session.js'
import { readSignature, type TensorMeta } from '../../src/engine/onnx-signature.js'
import { specFromConfig } from '../../src/engine/model-config.js'
import { loadModel } from '../../src/engine/loaded-model.js'
import { generatedModel } from '../helpers/tiny-model.js'

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
