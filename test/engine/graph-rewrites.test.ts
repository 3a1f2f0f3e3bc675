/**
 * The graph rewrites prefixd applies at load, on real exports: where each is
 * needed, that it is exact (the rewritten graph fed the neutral value gives
 * the original graph's outputs) and that the new input really drives the
 * model. And what loading learns from the graph: dynamic int8 quantization.
 */
import t from 'tap'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { probeBatchInvariance } from '../../src/engine/batch-invariance-probe.js'
import { ForwardRunner } from '../../src/engine/forward-runner.js'
import { deriveModel } from '../../src/engine/graph/derive-model.js'
import { float32Io } from '../../src/engine/graph/float32-io.js'
import { GraphIndex } from '../../src/engine/graph/graph-index.js'
import { encodeModelProto, readModelProto } from '../../src/engine/graph/model-proto.js'
import { POSITION_IDS, positionIdsInput } from '../../src/engine/graph/position-ids-input.js'
import { readModelSpec } from '../../src/engine/model-config.js'
import { readSignature, type TensorMeta } from '../../src/engine/onnx-signature.js'
import { quantizationOf } from '../../src/engine/quantization.js'
import { halfToFloat } from '../../src/prefixes/dtype-convert.js'
import { closeness } from '../helpers/reference-compare.js'
import { floatToHalfBits, seededFloats } from '../helpers/prefix-fixtures.js'
import { generatedModel } from '../helpers/tiny-model.js'
import { zoo } from '../helpers/zoo.js'

const zooModel = (family: string) => join(zoo, family, 'model', 'model.onnx')
const options = { intraOpNumThreads: 1, interOpNumThreads: 1 }

interface Step {
  ids: number[]
  pastLen: number
  positions?: number[]
}

/** Feeds for one step of a [1, heads, pastLen, headDim] model; the past is seeded, the same for both sessions compared. */
function feedsFor(step: Step, layers: number, heads: number, headDim: number, half = false): Record<string, ort.Tensor> {
  const n = step.ids.length
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(step.ids, BigInt), [1, n]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(step.pastLen + n).fill(1n), [1, step.pastLen + n]),
  }
  if (step.positions) feeds[POSITION_IDS] = new ort.Tensor('int64', BigInt64Array.from(step.positions, BigInt), [1, n])
  for (let l = 0; l < layers; l++) {
    for (const [k, kind] of ['key', 'value'].entries()) {
      const values = seededFloats(heads * step.pastLen * headDim, 100 + 2 * l + k)
      // float16-representable values, so that both graphs see the very same past.
      const halfBits = Uint16Array.from(values, floatToHalfBits)
      const dims = [1, heads, step.pastLen, headDim]
      feeds[`past_key_values.${l}.${kind}`] = half
        ? new ort.Tensor('float16', halfBits, dims)
        : new ort.Tensor('float32', Float32Array.from(halfBits, halfToFloat), dims)
    }
  }
  return feeds
}

async function logits(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const out = (await session.run(feeds)).logits
  return out.type === 'float16' ? Float32Array.from(out.data as Uint16Array, halfToFloat) : (out.data as Float32Array)
}

t.test('position_ids: gemma derives positions in the graph; the rewrite takes them as an input, exactly', async (t) => {
  const model = await readModelProto(zooModel('gemma'))
  t.equal(positionIdsInput.needed(model), true)
  positionIdsInput.apply(model)
  const input = model.graph!.input.find((i) => i.name === POSITION_IDS)
  t.ok(input, 'position_ids is an input now')

  // The derived positions still feed the causal mask, which must stay by cache slot.
  const index = new GraphIndex(model.graph!)
  const derived = model.graph!.node.find((n) => n.opType === 'Unsqueeze' && index.producer.get(n.input[0])?.opType === 'Range' && (index.consumers.get(n.output[0]) ?? []).some((c) => c.opType === 'Unsqueeze'))
  t.ok(derived, 'the mask still reads the graph’s own positions')
  t.ok((index.consumers.get(POSITION_IDS) ?? []).length > 0, 'and the rotary embedding reads the input')

  const original = await ort.InferenceSession.create(zooModel('gemma'), options)
  const rewritten = await ort.InferenceSession.create(encodeModelProto(model), options)
  t.teardown(async () => {
    await original.release()
    await rewritten.release()
  })
  for (const step of [
    { ids: [1, 403, 407, 261], pastLen: 0 },
    { ids: [378], pastLen: 6 },
    { ids: [1, 385, 328], pastLen: 6 },
  ]) {
    const neutral = Array.from(step.ids, (_, j) => step.pastLen + j)
    const want = await logits(original, feedsFor(step, 2, 1, 16))
    const got = await logits(rewritten, feedsFor({ ...step, positions: neutral }, 2, 1, 16))
    const c = closeness(got, want, 1e-5)
    t.ok(c.ok, `neutral positions give the original logits (past ${step.pastLen}, max diff ${c.maxDiff})`)
    // Rotary angles are relative: stretch the positions (a uniform shift of a pastless prompt would change nothing).
    const moved = await logits(rewritten, feedsFor({ ...step, positions: neutral.map((p, j) => p + 3 * j + 3) }, 2, 1, 16))
    t.notOk(closeness(moved, want, 1e-3).ok, 'other positions give other logits: the input drives the rotary embedding')
  }
})

t.test('position_ids: not applied where the graph takes positions or has none to take', async (t) => {
  for (const family of ['gpt2', 'llama_gqa', 'phi3']) t.equal(positionIdsInput.needed(await readModelProto(zooModel(family))), false, `${family} takes position_ids`)
  t.equal(positionIdsInput.needed(await readModelProto(zooModel('bloom'))), false, 'bloom (ALiBi) derives its bias from the mask, per row')
  t.equal(positionIdsInput.needed(await readModelProto(join(await generatedModel('llama'), 'model.onnx'))), false)
  const bloom = await deriveModel(zooModel('bloom'), [positionIdsInput, float32Io])
  t.same(bloom.applied, [])
  t.equal(bloom.source, zooModel('bloom'), 'a model that needs nothing loads from its file')
})

t.test('float32_io: a float16 model with float32 key/values and logits gives the same bits', async (t) => {
  const file = join(await generatedModel('llama', 'tiny', { dtype: 'float16' }), 'model.onnx')
  const model = await readModelProto(file)
  t.equal(float32Io.needed(model), true)
  t.equal(float32Io.needed(await readModelProto(zooModel('gpt2'))), false, 'float32 models need nothing')
  float32Io.apply(model)
  t.equal(float32Io.needed(model), false, 'applied once, the boundary is float32')
  const original = await ort.InferenceSession.create(file, options)
  const rewritten = await ort.InferenceSession.create(encodeModelProto(model), options)
  t.teardown(async () => {
    await original.release()
    await rewritten.release()
  })
  for (const step of [
    { ids: [1, 20, 30], pastLen: 0 },
    { ids: [40], pastLen: 5 },
  ]) {
    const positions = step.ids.map((_, j) => step.pastLen + j)
    const want = await logits(original, feedsFor({ ...step, positions }, 2, 2, 16, true))
    const got = await logits(rewritten, feedsFor({ ...step, positions }, 2, 2, 16, false))
    t.same(got, want, `identical logits, past ${step.pastLen}`)
  }
})

t.test('dynamic int8 quantization is recognized from the operators', async (t) => {
  const int8 = await deriveModel(zooModel('gpt2-int8'), [])
  t.equal(quantizationOf(int8.opTypes), 'int8-dynamic')
  t.ok(int8.opTypes.has('DynamicQuantizeLinear'))
  const float = await deriveModel(zooModel('gpt2'), [])
  t.equal(quantizationOf(float.opTypes), null)
  t.ok(float.opTypes.has('MatMul'), 'op types are read from the graph')
})

t.test('the load-time probe measures batch invariance: gemma without its rewrite fails it, with it passes', async (t) => {
  const probe = async (family: string, rewrite: boolean): Promise<boolean> => {
    const dir = join(zoo, family, 'model')
    const spec = await readModelSpec(dir)
    const model = await readModelProto(zooModel(family))
    if (rewrite && positionIdsInput.needed(model)) positionIdsInput.apply(model)
    const session = await ort.InferenceSession.create(encodeModelProto(model), options)
    t.teardown(() => session.release())
    const meta = session as unknown as { inputMetadata: TensorMeta[]; outputMetadata: TensorMeta[] }
    const shape = { numLayers: spec.numLayers, numKvHeads: spec.numKvHeads, headDim: spec.headDim }
    const runner = new ForwardRunner(session, readSignature(meta.inputMetadata, meta.outputMetadata, spec), shape)
    return probeBatchInvariance(runner, shape, spec.vocabSize, [1, 403, 407, 261, 378, 432, 383])
  }
  t.equal(await probe('gemma', false), false, 'positions derived per column: a padded row gets other logits')
  t.equal(await probe('gemma', true), true, 'positions as an input: the same logits')
  t.equal(await probe('bloom', false), true, 'ALiBi from the mask is per row already')
  t.equal(await probe('gpt2', false), true)
  t.equal(await probe('gpt2-int8', false), false, 'dynamic quantization scales over the batch')
})
