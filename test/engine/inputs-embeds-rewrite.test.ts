/**
 * The inputs_embeds rewrite on real and generated exports of both families it
 * must serve (Llama: stories260K and the generated tiny llama; GPT-2: the
 * generated tiny gpt2 and optimum's own export, whose ids pass through a
 * Reshape before the lookup, also dynamically quantized to int8):
 * - exact: fed no virtual token, the derived graph gives the original's
 *   logits and presents bit for bit;
 * - a virtual token whose vector is a token's own table row gives exactly
 *   what that token gives, so the embedding enters where the lookup's did;
 * - it is found by structure and applied once.
 */
import { create, fromBinary } from '@bufbuild/protobuf'
import * as ort from 'onnxruntime-node'
import { ModelProtoSchema, NodeProtoSchema, TensorProto_DataType, type ModelProto } from 'onnx-buf'
import t from 'tap'
import { join } from 'node:path'
import { deriveModel } from '../../src/engine/graph/derive-model.js'
import { findTokenEmbedding, inputsEmbedsRewrite } from '../../src/engine/graph/inputs-embeds-rewrite.js'
import { float32Io } from '../../src/engine/graph/float32-io.js'
import { readModelProto } from '../../src/engine/graph/model-proto.js'
import { MODEL_REWRITES } from '../../src/engine/graph/rewrites.js'
import { readModelSpec } from '../../src/engine/model-config.js'
import type { ModelSpec } from '../../src/domain/model-spec.js'
import { findModelFile } from '../../src/engine/onnx-session.js'
import { mulberry32 } from '../../src/models/generate/prng.js'
import { halfToFloat } from '../../src/prefixes/dtype-convert.js'
import { sharedDir, storiesModelDir } from '../helpers/shared-data.js'
import { generatedModel } from '../helpers/tiny-model.js'

const zoo = (family: string) => join(sharedDir, 'zoo', family, 'model')
const MODELS = [
  { name: 'stories260K (llama)', dir: storiesModelDir },
  { name: 'generated llama', dir: await generatedModel('llama') },
  { name: 'generated gpt2', dir: await generatedModel('gpt2') },
  { name: 'optimum gpt2', dir: zoo('gpt2') },
  { name: 'optimum gpt2, int8 (quantize_dynamic)', dir: zoo('gpt2-int8') },
]
const OPTIONS: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: 1 }

/** The token table [vocab, hidden] as float32, wherever the exporter put its values; null for a quantized table. */
function tokenTable(model: ModelProto): Float32Array | null {
  const found = findTokenEmbedding(model.graph!)!
  const table = model.graph!.initializer.find((i) => i.name === found.gather.input[0])!
  if (table.dataType !== TensorProto_DataType.FLOAT) return null
  const raw = table.rawData
  const values = raw.length > 0 ? new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)) : Float32Array.from(table.floatData)
  return values
}

interface Batch {
  ids: number[][]
  pastLen: number
}

function feedsFor(session: ort.InferenceSession, spec: ModelSpec, batch: Batch, seed: number, extra: Record<string, ort.Tensor> = {}): Record<string, ort.Tensor> {
  const b = batch.ids.length
  const s = batch.ids[0].length
  const P = batch.pastLen
  const rand = mulberry32(seed)
  const feeds: Record<string, ort.Tensor> = { ...extra }
  for (const name of session.inputNames) {
    if (name in feeds) continue
    if (name === 'input_ids') feeds[name] = new ort.Tensor('int64', BigInt64Array.from(batch.ids.flat(), BigInt), [b, s])
    else if (name === 'attention_mask') feeds[name] = new ort.Tensor('int64', new BigInt64Array(b * (P + s)).fill(1n), [b, P + s])
    else if (name === 'position_ids') feeds[name] = new ort.Tensor('int64', BigInt64Array.from({ length: b * s }, (_, i) => BigInt(P + (i % s))), [b, s])
    else if (name.startsWith('past_key_values.')) {
      const dims = [b, spec.numKvHeads, P, spec.headDim]
      feeds[name] = new ort.Tensor('float32', Float32Array.from({ length: dims.reduce((x, y) => x * y, 1) }, () => rand() * 2 - 1), dims)
    } else throw new Error(`the test does not know input ${name}`)
  }
  return feeds
}

function bitsEqual(a: ort.Tensor, b: ort.Tensor): boolean {
  const x = a.data as Float32Array
  const y = b.data as Float32Array
  return x.length === y.length && x.every((v, i) => Object.is(v, y[i]))
}

t.test('the rewrite is registered', async (t) => {
  t.ok(MODEL_REWRITES.includes(inputsEmbedsRewrite))
})

for (const { name, dir } of MODELS) {
  t.test(name, async (t) => {
    const file = await findModelFile(dir)
    const spec = await readModelSpec(dir)
    const derived = await deriveModel(file, [inputsEmbedsRewrite])
    t.same(derived.applied, ['inputs_embeds'], 'the lookup was found and the input derived')
    const bytes = derived.source as Uint8Array
    t.notOk(inputsEmbedsRewrite.needed(fromBinary(ModelProtoSchema, bytes)), 'a derived graph needs it no more: applied once')

    const original = await ort.InferenceSession.create(file, OPTIONS)
    const rewritten = await ort.InferenceSession.create(bytes, OPTIONS)
    t.teardown(async () => {
      await original.release()
      await rewritten.release()
    })
    t.ok(rewritten.inputNames.includes('inputs_embeds'))
    const hidden = spec.hiddenSize
    const table = tokenTable(await readModelProto(file))

    const rand = mulberry32(99)
    const batch: Batch = { ids: [0, 1].map(() => Array.from({ length: 5 }, () => 3 + Math.floor(rand() * (spec.vocabSize - 3)))), pastLen: 3 }
    const want = await original.run(feedsFor(original, spec, batch, 7))
    const neutral = { inputs_embeds: new ort.Tensor('float32', new Float32Array(hidden), [1, 1, hidden]) }
    const same = await rewritten.run(feedsFor(rewritten, spec, batch, 7, neutral))
    for (const out of original.outputNames) t.ok(bitsEqual(same[out], want[out]), `no virtual token: ${out} bit for bit`)

    // Slots marked -1 take their vector from inputs_embeds: give them the table rows of the ids they replace.
    const marked: Batch = { ...batch, ids: batch.ids.map((row, r) => row.map((id, j) => ((r + j) % 2 === 0 ? -1 : id))) }
    const embeds = new Float32Array(2 * 5 * hidden)
    if (table !== null) {
      batch.ids.forEach((row, r) => row.forEach((id, j) => embeds.set(table.subarray(id * hidden, (id + 1) * hidden), (r * 5 + j) * hidden)))
      const viaEmbeds = await rewritten.run(feedsFor(rewritten, spec, marked, 7, { inputs_embeds: new ort.Tensor('float32', embeds, [2, 5, hidden]) }))
      for (const out of original.outputNames) t.ok(bitsEqual(viaEmbeds[out], want[out]), `tokens fed as their own embeddings: ${out} bit for bit`)
    }

    // And the embeddings matter: other vectors at the marked slots change the logits.
    const changed = await rewritten.run(feedsFor(rewritten, spec, marked, 7, { inputs_embeds: new ort.Tensor('float32', embeds.map((v) => v + 0.5), [2, 5, hidden]) }))
    t.notOk(bitsEqual(changed.logits, want.logits), 'other vectors give other logits')
  })
}

t.test('a lookup it cannot take apart is left alone: the model then serves prefixes only', async (t) => {
  const model = await readModelProto(await findModelFile(storiesModelDir))
  const graph = model.graph!
  t.ok(inputsEmbedsRewrite.needed(model), 'the export as is has a lookup')
  // The table now reaches the Gather through a computed tensor, not as an initializer.
  const gather = findTokenEmbedding(graph)!.gather
  const copy = create(NodeProtoSchema, { opType: 'Identity', name: 'table-copy', input: [gather.input[0]], output: ['table-copy-out'] })
  graph.node.splice(graph.node.indexOf(gather), 0, copy)
  gather.input[0] = 'table-copy-out'
  t.equal(findTokenEmbedding(graph), null)
  t.notOk(inputsEmbedsRewrite.needed(model))
})

t.test('a float16 model: inputs_embeds in float32 at the boundary, a token\'s own row still gives its outputs bit for bit', async (t) => {
  const dir = await generatedModel('llama', 'tiny', { dtype: 'float16' })
  const file = await findModelFile(dir)
  const spec = await readModelSpec(dir)
  const proto = await readModelProto(file)
  const found = findTokenEmbedding(proto.graph!)!
  t.equal(found.elemType, TensorProto_DataType.FLOAT16, 'the lookup is found in the table\'s own precision')
  // Only the two rewrites under test: the others (LoRA inputs, step outputs) add inputs and outputs this check does not feed.
  const derived = await deriveModel(file, [inputsEmbedsRewrite, float32Io])
  t.same(derived.applied, [inputsEmbedsRewrite.name, float32Io.name], derived.applied.join(', '))
  const session = await ort.InferenceSession.create(derived.source as Uint8Array, OPTIONS)
  t.teardown(() => session.release())
  const meta = (session as unknown as { inputMetadata: Array<{ name: string; type?: string }> }).inputMetadata
  t.equal(meta.find((m) => m.name === 'inputs_embeds')?.type, 'float32', 'the engine feeds float32')

  const hidden = spec.hiddenSize
  const tableRaw = proto.graph!.initializer.find((i) => i.name === found.gather.input[0])!.rawData
  const halves = new Uint16Array(tableRaw.buffer.slice(tableRaw.byteOffset, tableRaw.byteOffset + tableRaw.byteLength))
  const row = (id: number) => Float32Array.from(halves.subarray(id * hidden, (id + 1) * hidden), halfToFloat)
  const batch: Batch = { ids: [[5, 9, 12], [7, 3, 30]], pastLen: 2 }
  const neutral = { inputs_embeds: new ort.Tensor('float32', new Float32Array(hidden), [1, 1, hidden]) }
  const want = await session.run(feedsFor(session, spec, batch, 3, neutral))
  const marked: Batch = { ...batch, ids: batch.ids.map((r, i) => r.map((id, j) => (i === j ? -1 : id))) }
  const embeds = new Float32Array(2 * 3 * hidden)
  batch.ids.forEach((r, i) => r.forEach((id, j) => embeds.set(row(id), (i * 3 + j) * hidden)))
  const got = await session.run(feedsFor(session, spec, marked, 3, { inputs_embeds: new ort.Tensor('float32', embeds, [2, 3, hidden]) }))
  for (const out of session.outputNames) t.ok(bitsEqual(got[out], want[out]), `${out} bit for bit`)
})
