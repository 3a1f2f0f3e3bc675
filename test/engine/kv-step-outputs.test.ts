/**
 * The graph rewrite that makes a model return only the key/value columns a pass
 * computed (graph/kv-step-outputs.ts), and the engine's in-place cache that
 * takes them (batch/kv-state.ts): real ONNX Runtime sessions of the generated
 * tiny llama and gpt2, original file against rewritten bytes.
 */
import t from 'tap'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { create } from '@bufbuild/protobuf'
import { GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema, TensorProto_DataType, type ModelProto } from 'onnx-buf'
import { buildDecode, buildPrefill } from '../../src/engine/batch/forward-feed.js'
import { appendStep, compact, packedAsCompact, prefillState, roomFor, withRoom, type KvShape, type KvState } from '../../src/engine/batch/kv-state.js'
import { fetchedLogits, ForwardRunner } from '../../src/engine/forward-runner.js'
import { deriveModel } from '../../src/engine/graph/derive-model.js'
import { kvStepOutputs } from '../../src/engine/graph/kv-step-outputs.js'
import { encodeModelProto, readModelProto } from '../../src/engine/graph/model-proto.js'
import { addGraphInput, addGraphOutput, newNode, withInts } from '../../src/engine/graph/graph-edit.js'
import { readModelSpec } from '../../src/engine/model-config.js'
import { readSignature, type TensorMeta } from '../../src/engine/onnx-signature.js'
import { generateTinyModel, pastKv, seededPrefix, tempDir } from '../helpers/batching-models.js'

const dir = await tempDir(t, 'kv-step')
const options: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1 }

function runnerFor(session: ort.InferenceSession, spec: Awaited<ReturnType<typeof readModelSpec>>, shape: KvShape) {
  const meta = session as unknown as { inputMetadata: TensorMeta[]; outputMetadata: TensorMeta[] }
  const signature = readSignature(meta.inputMetadata, meta.outputMetadata, spec)
  return { signature, runner: new ForwardRunner(session, signature, shape) }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY
  let d = 0
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]))
  return d
}

for (const arch of ['llama', 'gpt2'] as const) {
  t.test(`${arch}: the rewritten graph returns the new columns of present, and the same logits`, async (t) => {
    const modelDir = await generateTinyModel(dir, arch)
    const file = join(modelDir, 'model.onnx')
    const spec = await readModelSpec(modelDir)
    const shape = { numLayers: spec.numLayers, numKvHeads: spec.numKvHeads, headDim: spec.headDim }
    const derived = await deriveModel(file, [kvStepOutputs])
    t.same(derived.applied, ['kv_step_outputs'], 'the rewrite applies to the generated model')
    t.type(derived.source, Uint8Array, 'the rewritten model is loaded from bytes')
    const plain = runnerFor(await ort.InferenceSession.create(file, options), spec, shape)
    const stepped = runnerFor(await ort.InferenceSession.create(derived.source as Uint8Array, options), spec, shape)
    t.equal(plain.signature.presentIsStep, false, 'the original graph returns present')
    t.equal(stepped.signature.presentIsStep, true, 'the rewritten graph returns present_step')
    t.same(stepped.signature.presentKeys, Array.from({ length: spec.numLayers }, (_, i) => `present_step.${i}.key`))

    // Two rows with prefixes of different lengths and prompts of different lengths: padding and holes included.
    const rows = [
      { id: 1, promptIds: [5, 6, 7, 8], adapters: [pastKv(seededPrefix(spec, 3, 11))] },
      { id: 2, promptIds: [9, 10], adapters: [pastKv(seededPrefix(spec, 5, 12))] },
    ]
    const { feed, state } = buildPrefill(shape, rows)
    const a = await plain.runner.run(feed)
    const b = await stepped.runner.run(feed)
    t.ok(maxAbsDiff(fetchedLogits(a), fetchedLogits(b)) <= 1e-6, 'prefill logits agree')
    for (let layer = 0; layer < spec.numLayers; layer++) {
      t.equal(b.stepKeys[layer].length, 2 * shape.numKvHeads * feed.seqLen * shape.headDim, `layer ${layer}: only the prompt's columns come back`)
      t.ok(maxAbsDiff(a.stepKeys[layer], b.stepKeys[layer]) <= 1e-6, `layer ${layer}: keys agree with present's last columns`)
      t.ok(maxAbsDiff(a.stepValues[layer], b.stepValues[layer]) <= 1e-6, `layer ${layer}: values agree with present's last columns`)
    }

    // Three decode steps through the in-place cache: both graphs keep giving the same logits.
    let cacheA = compact(shape, state.rowIds.map((_, row) => ({ state: prefillState(shape, feed, state.rowIds, [...state.nextPosition], a.stepKeys, a.stepValues), row })))
    let cacheB = compact(shape, state.rowIds.map((_, row) => ({ state: prefillState(shape, feed, state.rowIds, [...state.nextPosition], b.stepKeys, b.stepValues), row })))
    for (let step = 0; step < 3; step++) {
      const outA = await plain.runner.run(buildDecode(cacheA, [20 + step, 30 + step]))
      const outB = await stepped.runner.run(buildDecode(cacheB, [20 + step, 30 + step]))
      t.ok(maxAbsDiff(fetchedLogits(outA), fetchedLogits(outB)) <= 1e-5, `decode step ${step}: logits agree`)
      appendStep(shape, cacheA, outA.stepKeys, outA.stepValues)
      appendStep(shape, cacheB, outB.stepKeys, outB.stepValues)
      cacheA = withRoom(shape, cacheA)
      cacheB = withRoom(shape, cacheB)
    }
  })
}

t.test('graphs whose present is not a plain Concat of their past are left as they are', async (t) => {
  const modelDir = await generateTinyModel(dir, 'llama')
  const model = await readModelProto(join(modelDir, 'model.onnx'))
  t.equal(kvStepOutputs.needed(model), true, 'the generated graph qualifies')
  const concat = model.graph!.node.find((n) => n.output[0] === 'present.0.key')!
  const pastName = concat.input[0]
  concat.input[0] = 'something_else'
  t.equal(kvStepOutputs.needed(model), false, "a present that does not extend its layer's past")
  concat.input[0] = pastName
  concat.opType = 'Add'
  t.equal(kvStepOutputs.needed(model), false, 'a present made by another op')
  concat.opType = 'Concat'
  t.equal(kvStepOutputs.needed(model), true, 'restored, it qualifies again')
})

/**
 * One layer's present as a Concat of its past and new columns, where the key's
 * new columns are a graph input and the value's a node's output: the first
 * needs an Identity to carry the output's name, the second takes the name.
 */
function oneLayerGraph(): ModelProto {
  const graph = create(GraphProtoSchema, { name: 'one-layer' })
  for (const name of ['past_key_values.0.key', 'past_key_values.0.value', 'new_key', 'x']) addGraphInput(graph, name, TensorProto_DataType.FLOAT, [1, 1, 'seq', 2])
  graph.node.push(
    newNode('Neg', 'make_value', ['x'], ['new_value']),
    withInts(newNode('Concat', 'concat_key', ['past_key_values.0.key', 'new_key'], ['present.0.key']), { axis: 2 }),
    withInts(newNode('Concat', 'concat_value', ['past_key_values.0.value', 'new_value'], ['present.0.value']), { axis: 2 }),
    newNode('Mul', 'reads_value', ['new_value', 'new_value'], ['squared']),
  )
  for (const name of ['present.0.key', 'present.0.value', 'squared']) addGraphOutput(graph, name, TensorProto_DataType.FLOAT, [1, 1, 'total', 2])
  return create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })], graph })
}

t.test('new columns a node makes take the output name; a graph input goes through an Identity', async (t) => {
  const model = oneLayerGraph()
  kvStepOutputs.apply(model)
  const graph = model.graph!
  t.same(graph.node.filter((n) => n.opType === 'Identity').map((n) => [n.input[0], n.output[0]]), [['new_key', 'present_step.0.key']], 'one Identity, for the input')
  t.same(graph.node.find((n) => n.name === 'make_value')!.output, ['present_step.0.value'], 'the Neg makes the value output itself')
  t.same(graph.node.find((n) => n.name === 'reads_value')!.input, ['present_step.0.value', 'present_step.0.value'], 'its other readers follow the rename')
  const session = await ort.InferenceSession.create(encodeModelProto(model), options)
  const tensor = (values: number[]) => new ort.Tensor('float32', Float32Array.from(values), [1, 1, values.length / 2, 2])
  const out = await session.run({
    'past_key_values.0.key': tensor([1, 2]),
    'past_key_values.0.value': tensor([3, 4]),
    new_key: tensor([5, 6]),
    x: tensor([7, 8]),
  })
  t.same([...(out['present_step.0.key'].data as Float32Array)], [5, 6])
  t.same([...(out['present_step.0.value'].data as Float32Array)], [-7, -8])
  t.same([...(out.squared.data as Float32Array)], [49, 64])
})

/** A state of `rows` rows with `length` columns in use, every real value distinct. */
function filledState(shape: KvShape, rows: number, length: number): KvState {
  const { numKvHeads: H, headDim: D } = shape
  // A prefill with no past whose computed columns are the values below.
  const feedMask = new BigInt64Array(rows * length).fill(1n)
  const keys = Array.from({ length: shape.numLayers }, (_, l) => Float32Array.from({ length: rows * H * length * D }, (_, i) => l * 1e5 + i))
  const values = keys.map((k) => k.map((x) => -x))
  return prefillState(
    shape,
    { batch: rows, seqLen: length, pastLen: 0, inputIds: new BigInt64Array(0), inputsEmbeds: null, positionIds: new BigInt64Array(0), attentionMask: feedMask, pastKeys: keys.map(() => new Float32Array(0)), pastValues: keys.map(() => new Float32Array(0)), logitsToKeep: length, fetchLogits: true },
    Array.from({ length: rows }, (_, r) => r + 1),
    Array.from({ length: rows }, () => length),
    keys,
    values,
  )
}

t.test('appendStep writes column `length` of every row in place; withRoom re-packs only when full', async (t) => {
  const shape = { numLayers: 2, numKvHeads: 2, headDim: 3 }
  const { numKvHeads: H, headDim: D } = shape
  const full = filledState(shape, 2, 4)
  t.equal(full.capacity, 4, 'a prefill state has no room')
  t.throws(() => appendStep(shape, full, [], []), /no free column/, 'appending to a full state is refused')
  const roomy = withRoom(shape, full)
  t.not(roomy, full, 'a full state is re-packed')
  t.ok(roomy.capacity > roomy.length, `room was added (capacity ${roomy.capacity})`)
  t.equal(roomy.length, 4)
  for (let r = 0; r < 2; r++) {
    for (let h = 0; h < H; h++) {
      const from = full.keys[1].subarray((r * H + h) * 4 * D, (r * H + h + 1) * 4 * D)
      const to = roomy.keys[1].subarray((r * H + h) * roomy.capacity * D, ((r * H + h) * roomy.capacity + 4) * D)
      t.same([...to], [...from], `row ${r} head ${h}: the used columns moved as they were`)
    }
  }
  t.equal(withRoom(shape, roomy), roomy, 'a state with room is kept')

  const width = roomy.capacity + 1
  t.same([...roomy.mask.subarray(0, width)].map(Number), [1, 1, 1, 1, ...new Array(roomy.capacity - 4).fill(0), 1], 'mask: used columns, free columns, the decoded token')
  const stepKeys = [0, 1].map((l) => Float32Array.from({ length: 2 * H * D }, (_, i) => 900 + l * 100 + i))
  const stepValues = stepKeys.map((k) => k.map((x) => x + 0.5))
  const keysBefore = roomy.keys[0]
  appendStep(shape, roomy, stepKeys, stepValues)
  t.equal(roomy.keys[0], keysBefore, 'no new buffers')
  t.equal(roomy.length, 5)
  t.same(roomy.nextPosition, [5, 5], 'positions advance')
  for (let r = 0; r < 2; r++) {
    t.equal(roomy.mask[r * width + 4], 1n, `row ${r}: the new column is real`)
    t.equal(roomy.mask[r * width + 5], 0n, `row ${r}: the next one is still free`)
    for (let h = 0; h < H; h++) {
      const at = ((r * H + h) * roomy.capacity + 4) * D
      t.same([...roomy.keys[1].subarray(at, at + D)], [...stepKeys[1].subarray((r * H + h) * D, (r * H + h + 1) * D)], `row ${r} head ${h}: keys in column 4`)
      t.same([...roomy.values[0].subarray(at, at + D)], [...stepValues[0].subarray((r * H + h) * D, (r * H + h + 1) * D)], `row ${r} head ${h}: values in column 4`)
    }
  }
})

t.test('a prefill packed as a re-pack would pack it runs as it is: prefillState with room equals compact of it', async (t) => {
  const shape = { numLayers: 2, numKvHeads: 2, headDim: 3 }
  const mask = (rows: number[][]) => BigInt64Array.from(rows.flat(), BigInt)
  t.equal(packedAsCompact(mask([[1, 1, 1], [0, 1, 1]]), 2, 3), true, 'right-aligned rows, one of them full')
  t.equal(packedAsCompact(mask([[0, 1, 1], [0, 0, 1]]), 2, 3), false, 'no row fills the columns: a re-pack would shorten it')
  t.equal(packedAsCompact(mask([[1, 1, 1], [1, 0, 1]]), 2, 3), false, 'a gap (a short prompt after a prefix)')

  // Two rows, three columns: row 1 has one padded column in front, as a shorter prompt without prefix has.
  const rows = 2
  const total = 3
  const { numKvHeads: H, headDim: D } = shape
  const feedMask = mask([[1, 1, 1], [0, 1, 1]])
  const keys = [0, 1].map((l) => Float32Array.from({ length: rows * H * total * D }, (_, i) => l * 1000 + i))
  const values = keys.map((k) => k.map((x) => -x))
  // What a model may compute at a padded position (a query that attends to nothing): it must not be kept.
  for (const tensor of [...keys, ...values]) for (let h = 0; h < H; h++) tensor.fill(Number.NaN, ((1 * H + h) * total + 0) * D, ((1 * H + h) * total + 1) * D)
  const feed = { batch: rows, seqLen: total, pastLen: 0, inputIds: new BigInt64Array(0), inputsEmbeds: null, positionIds: new BigInt64Array(0), attentionMask: feedMask, pastKeys: keys.map(() => new Float32Array(0)), pastValues: keys.map(() => new Float32Array(0)), logitsToKeep: 1, fetchLogits: false }
  const roomless = prefillState(shape, feed, [1, 2], [3, 2], keys, values)
  const packed = compact(shape, [0, 1].map((row) => ({ state: roomless, row })))
  const direct = prefillState(shape, feed, [1, 2], [3, 2], keys, values, roomFor(total))
  t.same([direct.length, direct.capacity], [packed.length, packed.capacity], 'same length and capacity')
  t.same([...direct.mask], [...packed.mask], 'same mask')
  for (let layer = 0; layer < 2; layer++) {
    t.same([...direct.keys[layer]], [...packed.keys[layer]], `layer ${layer}: same keys`)
    t.same([...direct.values[layer]], [...packed.values[layer]], `layer ${layer}: same values`)
  }
  t.ok(direct.keys.every((k) => !k.some(Number.isNaN)) && direct.values.every((v) => !v.some(Number.isNaN)), 'the padded column is zeros, not what the model left there')
  t.same(direct.nextPosition, [3, 2])
})
