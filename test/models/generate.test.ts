import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { fromBinary } from '@bufbuild/protobuf'
import { Tokenizer } from '@huggingface/tokenizers'
import { ModelProtoSchema, TensorProto_DataType, type ValueInfoProto } from 'onnx-buf'
import {
  buildWeights,
  generateModel,
  MODEL_ARCHS,
  MODEL_SIZES,
  modelDims,
  OPSET_VERSION,
  tokenizerFiles,
  type ModelArch,
  type ModelDims,
} from '../../src/models/generate/index.js'
import { runModelGenerate } from '../../src/models/generate-command.js'
import { referenceForward } from '../helpers/reference-forward.js'

// The test object tap passes to a callback, plugins included.
type Test = Parameters<Parameters<typeof t.test>[0]>[0]

const FILES = ['model.onnx', 'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']
const ROUND_TRIP_TEXTS = ['Once upon a time, there was a dog.', 'Zoë’s café: 3×4 = 12 ✓ 🙂\n\ttabbed']

function readJson(dir: string, file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(dir, file), 'utf8')) as Record<string, unknown>
}

function shapeOf(info: ValueInfoProto): (string | number)[] {
  const type = info.type?.value
  if (type?.case !== 'tensorType' || !type.value.shape) throw new Error(`${info.name} has no tensor shape`)
  return type.value.shape.dim.map((d) => (d.value.case === 'dimParam' ? d.value.value : Number(d.value.value)))
}

function std(values: ArrayLike<number>): number {
  let mean = 0
  for (let i = 0; i < values.length; i++) mean += values[i]
  mean /= values.length
  let variance = 0
  for (let i = 0; i < values.length; i++) variance += (values[i] - mean) ** 2
  return Math.sqrt(variance / values.length)
}

/** Every id decodes, the vocabulary is exactly the model's, and text survives encode/decode. */
function checkTokenizer(t: Test, tokenizer: Tokenizer, dims: ModelDims): void {
  const vocab = tokenizer.get_vocab(true)
  t.equal(vocab.size, dims.vocabSize, 'vocabulary size equals vocab_size')
  const ids = new Set<number>(vocab.values())
  t.ok(ids.size === dims.vocabSize && [...ids].every((id) => id >= 0 && id < dims.vocabSize), 'ids are exactly 0..vocab_size-1')
  for (const text of ROUND_TRIP_TEXTS) {
    const encoded = tokenizer.encode(text)
    t.equal(tokenizer.decode(encoded.ids, { skip_special_tokens: true }), text, `round trip of ${JSON.stringify(text)}`)
  }
  const story = tokenizer.encode(ROUND_TRIP_TEXTS[0]).ids
  if (dims.arch === 'llama') t.equal(story[0], dims.bosTokenId, 'llama adds <s>')
  else t.not(story[0], dims.bosTokenId, 'gpt2 adds no special token')
  t.ok(story.length < ROUND_TRIP_TEXTS[0].length / 2, `merges compress English (${story.length} tokens)`)
}

t.test('generated files: deterministic, optimum interface, Hugging Face config and tokenizer', async (t) => {
  for (const arch of MODEL_ARCHS) {
    const dims = modelDims(arch, 'tiny')
    const dir = t.testdir()
    const [first, second, reseeded] = ['a', 'b', 'c'].map((d) => join(dir, d))
    await generateModel({ arch, size: 'tiny', out: first, seed: 7 })
    await generateModel({ arch, size: 'tiny', out: second, seed: 7 })
    await generateModel({ arch, size: 'tiny', out: reseeded, seed: 8 })
    for (const file of FILES) t.ok(readFileSync(join(first, file)).equals(readFileSync(join(second, file))), `${arch}: same seed, identical ${file}`)
    t.notOk(readFileSync(join(first, 'model.onnx')).equals(readFileSync(join(reseeded, 'model.onnx'))), `${arch}: another seed, other weights`)
    t.ok(readFileSync(join(first, 'tokenizer.json')).equals(readFileSync(join(reseeded, 'tokenizer.json'))), `${arch}: the tokenizer does not depend on the seed`)

    const model = fromBinary(ModelProtoSchema, readFileSync(join(first, 'model.onnx')))
    t.same(model.opsetImport.map((o) => [o.domain, Number(o.version)]), [['', OPSET_VERSION]], `${arch}: default-domain opset ${OPSET_VERSION} only`)
    t.ok(model.graph!.node.every((n) => n.domain === ''), `${arch}: standard ops only`)
    const inputs = Object.fromEntries(model.graph!.input.map((i) => [i.name, shapeOf(i)]))
    const outputs = Object.fromEntries(model.graph!.output.map((o) => [o.name, shapeOf(o)]))
    const past = ['batch_size', dims.numKvHeads, 'past_sequence_length', dims.headDim]
    const present = ['batch_size', dims.numKvHeads, 'total_sequence_length', dims.headDim]
    const expectedInputs: Record<string, (string | number)[]> = {
      input_ids: ['batch_size', 'sequence_length'],
      attention_mask: ['batch_size', 'total_sequence_length'],
      position_ids: ['batch_size', 'sequence_length'],
    }
    const expectedOutputs: Record<string, (string | number)[]> = { logits: ['batch_size', 'sequence_length', dims.vocabSize] }
    for (let i = 0; i < dims.numLayers; i++) {
      for (const kind of ['key', 'value']) {
        expectedInputs[`past_key_values.${i}.${kind}`] = past
        expectedOutputs[`present.${i}.${kind}`] = present
      }
    }
    t.same(inputs, expectedInputs, `${arch}: inputs and their symbolic shapes`)
    t.same(outputs, expectedOutputs, `${arch}: outputs and their symbolic shapes`)
    const weights = model.graph!.initializer.filter((i) => i.dataType === TensorProto_DataType.FLOAT)
    t.ok(weights.every((i) => i.rawData.length === 4 * i.dims.reduce((a, b) => a * Number(b), 1)), `${arch}: float initializers in raw_data`)

    const config = readJson(first, 'config.json')
    const common = { model_type: arch, vocab_size: dims.vocabSize, bos_token_id: dims.bosTokenId, eos_token_id: dims.eosTokenId, tie_word_embeddings: true, torch_dtype: 'float32' }
    const specific =
      arch === 'llama'
        ? { architectures: ['LlamaForCausalLM'], hidden_size: dims.hiddenSize, num_hidden_layers: dims.numLayers, num_attention_heads: dims.numHeads, num_key_value_heads: dims.numKvHeads, head_dim: dims.headDim, intermediate_size: dims.intermediateSize, max_position_embeddings: dims.maxPositions, rms_norm_eps: dims.normEps, rope_theta: dims.ropeTheta }
        : { architectures: ['GPT2LMHeadModel'], n_embd: dims.hiddenSize, n_layer: dims.numLayers, n_head: dims.numHeads, n_positions: dims.maxPositions, n_ctx: dims.maxPositions, layer_norm_epsilon: dims.normEps, activation_function: 'gelu_new' }
    t.match(config, { ...common, ...specific }, `${arch}: config.json`)
    t.match(readJson(first, 'generation_config.json'), { bos_token_id: dims.bosTokenId, eos_token_id: dims.eosTokenId })
    checkTokenizer(t, new Tokenizer(readJson(first, 'tokenizer.json'), readJson(first, 'tokenizer_config.json')), dims)
  }
})

t.test('tokenizers of the larger sizes have exactly their vocab_size', async (t) => {
  for (const arch of MODEL_ARCHS) {
    for (const size of MODEL_SIZES.filter((s) => s !== 'tiny')) {
      const dims = modelDims(arch, size)
      const files = tokenizerFiles(dims)
      t.test(`${arch} ${size}`, async (t) => checkTokenizer(t, new Tokenizer(files.tokenizer, files.config), dims))
    }
  }
})

t.test('logits are far from uniform, so greedy tests do not hinge on near-ties', async (t) => {
  for (const arch of MODEL_ARCHS as ModelArch[]) {
    for (const size of ['tiny', '15m'] as const) {
      const weights = buildWeights(arch, size)
      const tokens = [weights.dims.bosTokenId, 100, 200, 300]
      const last = referenceForward(weights, tokens, [0, 1, 2, 3]).at(-1)!
      const spread = std(last)
      t.ok(spread > 2 && spread < 8, `${arch} ${size}: last-position logit std ${spread.toFixed(2)} is a few units`)
    }
  }
})

t.test('prefixd model generate command', async (t) => {
  const run = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = ''
    let err = ''
    const code = await runModelGenerate(argv, { out: (s) => (out += s), err: (s) => (err += s) })
    return { code, out, err }
  }
  const help = await run(['--help'])
  t.equal(help.code, 0)
  t.match(help.out, /--arch llama\|gpt2/)

  const dir = t.testdir()
  const bad: [string[], string][] = [
    [['--arch', 'bert', '--size', 'tiny', '--out', dir], '--arch'],
    [['--size', 'tiny', '--out', dir], '--arch'],
    [['--arch', 'llama', '--size', '7b', '--out', dir], '--size'],
    [['--arch', 'llama', '--size', 'tiny'], '--out'],
    [['--arch', 'llama', '--size', 'tiny', '--out', dir, '--seed', '1.5'], '--seed'],
    [['--arch', 'llama', '--size', 'tiny', '--out', dir, '--bogus'], '--bogus'],
    [['--arch', 'llama', '--size', 'tiny', '--out', dir, '--dtype', 'int8'], '--dtype'],
  ]
  for (const [argv, flag] of bad) {
    const result = await run(argv)
    t.equal(result.code, 2, `exit 2 for ${argv.join(' ')}`)
    t.match(result.err, flag, `the message names ${flag}`)
  }

  const out = join(dir, 'model')
  const ok = await run(['--arch', 'gpt2', '--size', 'tiny', '--out', out, '--seed', '3'])
  t.equal(ok.code, 0, 'exit 0 on success')
  t.match(ok.err, /wrote model\.onnx/, 'progress on stderr')
  t.match(readJson(out, 'config.json'), { model_type: 'gpt2', vocab_size: 512 })

  const layout = join(dir, 'layout')
  const all = await run(['--arch', 'llama', '--size', 'tiny', '--out', layout, '--dtype', 'float16', '--external-data', '--merged'])
  t.equal(all.code, 0)
  t.match(all.err, /wrote decoder_model_merged\.onnx and its external data/)
  t.ok(existsSync(join(layout, 'decoder_model_merged.onnx_data')), 'the weights beside the merged graph')
  t.notOk(existsSync(join(layout, 'model.onnx')))
  t.match(readJson(layout, 'config.json'), { torch_dtype: 'float16' })
})
