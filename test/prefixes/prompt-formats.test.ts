/**
 * The prompt-learning kinds' files: PEFT's save read as the kind its
 * peft_type names, prefixd's stored file written and read back exactly, the
 * stored file's own refusals, and the model checks (hidden size, and a model
 * whose graph cannot take input embeddings).
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ModelSpec } from '../../src/domain/model-spec.js'
import { InvalidPrefixError, PrefixShapeMismatchError } from '../../src/errors.js'
import { encodeF32 } from '../../src/prefixes/dtype-convert.js'
import { readNativeFile, readPeftFiles } from '../../src/prefixes/adapter-files.js'
import { ADAPTER_KINDS, kindNamed } from '../../src/prefixes/adapter-kinds.js'
import { serializeSafetensors } from '../../src/prefixes/safetensors.js'
import { promptAdaptersDir } from '../helpers/prompt-adapters.js'

const spec: ModelSpec = {
  modelType: 'llama', numLayers: 5, numAttentionHeads: 8, numKvHeads: 4, headDim: 8, hiddenSize: 64,
  vocabSize: 512, maxPositions: 512, bosTokenId: 1, eosTokenIds: [2], padTokenId: null,
  valueHeadDim: 8, prefixRefusal: null, quantization: null, batchInvariant: true, graphRewrites: [],
}
const files = (name: string) => ({
  config: readFileSync(join(promptAdaptersDir, name, 'adapter_config.json')),
  weights: readFileSync(join(promptAdaptersDir, name, 'adapter_model.safetensors')),
})

t.test('one table: each PEFT type and each stored format names one kind', async (t) => {
  t.same(ADAPTER_KINDS.map((k) => [k.name, k.peftType, k.contributes]), [
    ['prefix', 'PREFIX_TUNING', 'past_kv'],
    ['prompt_tuning', 'PROMPT_TUNING', 'input_embeds'],
    ['p_tuning', 'P_TUNING', 'input_embeds'],
  ])
  t.equal(new Set(ADAPTER_KINDS.map((k) => k.nativeFormat)).size, ADAPTER_KINDS.length, 'stored formats are distinct')
  t.equal(kindNamed(undefined).name, 'prefix', 'records from before kinds are prefixes')
})

for (const [name, kind] of [['pt-cat-luna', 'prompt_tuning'], ['ptune-king-leo', 'p_tuning']] as const) {
  t.test(`${name}: read as ${kind}, stored and read back bit for bit`, async (t) => {
    const { config, weights } = files(name)
    const peft = readPeftFiles(config, weights)
    t.equal(peft.kind, kind)
    t.equal(peft.format, 'peft')
    const k = kindNamed(peft.kind)
    k.assertServable(peft.contribution, { spec, accepts: new Set(['past_kv', 'input_embeds']) }, name)
    t.same(k.shapeFields(peft.contribution), { num_virtual_tokens: 8, hidden_size: 64 })
    const stored = readNativeFile(k.writeNative(peft.contribution, 'sha256:fp'))
    t.same([stored.kind, stored.format, stored.modelFingerprint], [kind, 'native', 'sha256:fp'])
    t.same(stored.contribution, peft.contribution, 'the same floats')

    t.throws(() => k.assertServable(peft.contribution, { spec, accepts: new Set(['past_kv']) }, name), PrefixShapeMismatchError)
    t.throws(() => k.assertServable(peft.contribution, { spec, accepts: new Set(['past_kv']) }, name), /needs input embeddings/)
    t.throws(() => k.assertServable(peft.contribution, { spec: { ...spec, hiddenSize: 96 }, accepts: new Set(['past_kv', 'input_embeds']) }, name), /hidden size 64 \(token_dim\), the model has 96/)
  })
}

t.test('a stored file that is not right is refused by name', async (t) => {
  const tensor = { prompt_embeddings: { dtype: 'F32', shape: [2, 4], data: encodeF32(new Float32Array(8).fill(0.5)) } }
  const meta = { format: 'prefixd.prompt_tuning', format_version: '1', num_virtual_tokens: '2', hidden_size: '4' }
  t.equal(readNativeFile(serializeSafetensors(tensor, meta)).kind, 'prompt_tuning', 'the baseline reads')
  const bad: Array<[string, Record<string, string>, RegExp]> = [
    ['unknown format', { ...meta, format: 'prefixd.other' }, /"format" is "prefixd\.other", expected "prefixd\.prefix", "prefixd\.prompt_tuning" or "prefixd\.p_tuning"/],
    ['newer version', { ...meta, format_version: '2' }, /unsupported format_version "2"/],
    ['no hidden_size', { format: meta.format, format_version: '1', num_virtual_tokens: '2' }, /has no "hidden_size"/],
    ['tokens not a number', { ...meta, num_virtual_tokens: 'two' }, /"num_virtual_tokens" is "two", not a positive integer/],
    ['shape disagrees', { ...meta, hidden_size: '8' }, /is \[2, 4\], but num_virtual_tokens 2 and hidden size 8 need \[2, 8\]/],
  ]
  for (const [what, metadata, message] of bad) {
    t.throws(() => readNativeFile(serializeSafetensors(tensor, metadata)), InvalidPrefixError, what)
    t.throws(() => readNativeFile(serializeSafetensors(tensor, metadata)), message, what)
  }
  const extra = { ...tensor, encoder: { dtype: 'F32', shape: [1], data: encodeF32(new Float32Array(1)) } }
  t.throws(() => readNativeFile(serializeSafetensors(extra, meta)), /unexpected tensors besides 'prompt_embeddings': 'encoder'/)
})
