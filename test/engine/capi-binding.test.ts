/**
 * Driving ONNX Runtime through its C API (src/engine/session/): a session's
 * metadata and outputs against onnxruntime-node's on the same graph; outputs
 * written into the caller's buffers; errors; and the decode path it enables,
 * present written in place (graph/present-in-place.ts, batch/present-arena.ts,
 * kv-state.ts adoptPresent) against the cache with room, pass for pass.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import * as ort from 'onnxruntime-node'
import { buildDecode, buildPrefill } from '../../src/engine/batch/forward-feed.js'
import { adoptPresent, appendStep, prefillState, withRoom, type KvShape, type KvState } from '../../src/engine/batch/kv-state.js'
import { CApiSession } from '../../src/engine/session/capi-session.js'
import { ForwardRunner, fetchedLogits } from '../../src/engine/forward-runner.js'
import { kvStepOutputs } from '../../src/engine/graph/kv-step-outputs.js'
import { readModelProto } from '../../src/engine/graph/model-proto.js'
import { presentInPlace, withPresentInPlace } from '../../src/engine/graph/present-in-place.js'
import { MODEL_REWRITES } from '../../src/engine/graph/rewrites.js'
import { loadModel, type LoadedModel } from '../../src/engine/loaded-model.js'
import { ModelLoadError } from '../../src/engine/model-load-error.js'
import { resolveBinding } from '../../src/engine/onnx-session.js'
import { pastKv, seededPrefix } from '../helpers/batching-models.js'
import { generatedModel } from '../helpers/tiny-model.js'

const llamaDir = await generatedModel('llama')
const llamaFile = join(llamaDir, 'model.onnx')

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY
  let d = 0
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]))
  return d
}

/** A two-row prefill of the exported graph, the second row left-padded. */
function prefillFeeds(model: LoadedModel): Record<string, ort.Tensor> {
  const { numKvHeads: H, headDim: D, numLayers } = model.spec
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from([1n, 5n, 6n, 7n, 0n, 1n, 8n, 9n]), [2, 4]),
    attention_mask: new ort.Tensor('int64', BigInt64Array.from([1n, 1n, 1n, 1n, 0n, 1n, 1n, 1n]), [2, 4]),
  }
  if (model.signature.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from([0n, 1n, 2n, 3n, 0n, 0n, 1n, 2n]), [2, 4])
  for (let i = 0; i < numLayers; i++) {
    feeds[model.signature.pastKeys[i]] = new ort.Tensor('float32', new Float32Array(0), [2, H, 0, D])
    feeds[model.signature.pastValues[i]] = new ort.Tensor('float32', new Float32Array(0), [2, H, 0, D])
  }
  return feeds
}

t.test('a C API session describes and runs the graph as onnxruntime-node does', async (t) => {
  const capi = CApiSession.create(llamaFile, { intraOpThreads: 1 })
  const node = await ort.InferenceSession.create(llamaFile, { intraOpNumThreads: 1 })
  t.teardown(async () => {
    await capi.release()
    await node.release()
  })
  const nodeMeta = node as unknown as { inputMetadata: unknown[]; outputMetadata: unknown[] }
  t.same(capi.inputMetadata, nodeMeta.inputMetadata, 'inputs: names, types, shapes with their symbolic dims')
  t.same(capi.outputMetadata, nodeMeta.outputMetadata, 'outputs too')
  t.match(CApiSession.libraryVersion(), /^\d+\.\d+\.\d+/, 'the library reports its version')

  const model = await loadModel(llamaDir, { executionProvider: 'cpu', intraOpThreads: 1, ortBinding: 'node', rewrites: [] })
  t.teardown(() => model.session.release())
  const feeds = prefillFeeds(model)
  const fetches = ['logits', 'present.0.key', 'present.1.value']
  const fromNode = await node.run(feeds, fetches)
  const fromCapi = await capi.run(feeds, fetches)
  for (const name of fetches) {
    t.equal(maxAbsDiff(fromCapi[name].data as Float32Array, fromNode[name].data as Float32Array), 0, `${name}: the same numbers`)
  }
  const { numKvHeads: H, headDim: D } = model.spec
  const into = new ort.Tensor('float32', new Float32Array(2 * H * 4 * D), [2, H, 4, D])
  const bound = await capi.run(feeds, fetches, { 'present.0.key': into })
  t.equal(bound['present.0.key'].data, into.data, 'an output given a buffer comes back as that buffer')
  t.equal(maxAbsDiff(into.data as Float32Array, fromNode['present.0.key'].data as Float32Array), 0, 'written there by the graph')
  t.equal(maxAbsDiff(bound.logits.data as Float32Array, fromNode.logits.data as Float32Array), 0, 'the other outputs are copied out as before')

  const wrongDims = new ort.Tensor('float32', new Float32Array(2 * H * 3 * D), [2, H, 3, D])
  await t.rejects(capi.run(feeds, fetches, { 'present.0.key': wrongDims }), /shape|dim/i, 'a buffer of other dims is refused by ONNX Runtime')
  await t.rejects(capi.run({ ...feeds, nonsense: feeds.input_ids }, fetches), /nonsense/, 'an input the graph does not take is named in the error')
  await t.rejects(capi.run(feeds, ['no_such_output']), /no_such_output/, 'so is an unknown output')
  const again = await capi.run(feeds, ['logits'])
  t.equal(maxAbsDiff(again.logits.data as Float32Array, fromNode.logits.data as Float32Array), 0, 'after errors the session runs as before')
  await t.rejects(nodeOnlyRefusesInto(model), /cannot write outputs/, 'onnxruntime-node refuses output buffers')
})

/** onnxruntime-node's PassSession, asked to write an output into a buffer. */
async function nodeOnlyRefusesInto(model: LoadedModel): Promise<unknown> {
  const feeds = prefillFeeds(model)
  const { numKvHeads: H, headDim: D } = model.spec
  return model.session.run(feeds, ['present.0.key'], { 'present.0.key': new ort.Tensor('float32', new Float32Array(2 * H * 4 * D), [2, H, 4, D]) })
}

t.test('present_in_place marks float32 graphs whose present extends its past; kv_step_outputs takes the rest', async (t) => {
  const rewrites = withPresentInPlace(MODEL_REWRITES)
  t.equal(rewrites.indexOf(presentInPlace) + 1, rewrites.findIndex((r) => r.name === kvStepOutputs.name), 'in kv_step_outputs place, just before it')
  const guarded = rewrites.find((r) => r.name === kvStepOutputs.name)!
  const float32 = await readModelProto(llamaFile)
  t.equal(presentInPlace.needed(float32), true, 'the generated float32 llama qualifies')
  t.equal(guarded.needed(float32), false, 'and then keeps its present')
  const float16 = await readModelProto(join(await generatedModel('llama', 'tiny', { dtype: 'float16' }), 'model.onnx'))
  t.equal(kvStepOutputs.needed(float16), true, 'a float16 graph whose present extends its past')
  t.equal(presentInPlace.needed(float16), false, 'is not written in place (its cache would be cast on every pass)')
  t.equal(guarded.needed(float16), true, 'but returns the new columns, as before')
  const concat = float32.graph!.node.find((n) => n.output[0] === 'present.0.key')!
  concat.opType = 'Add'
  t.equal(presentInPlace.needed(float32), false, 'a present made by another op is not')
})

t.test('the library stays loaded through garbage collections where only the C API uses it', async (t) => {
  // A process of its own: here onnxruntime-node has mapped the same file, which would keep it loaded anyway.
  const loader = fileURLToPath(new URL('../../node_modules/@tapjs/typescript/dist/esm/import.mjs', import.meta.url))
  const session = new URL('../../src/engine/session/capi-session.ts', import.meta.url).href
  const script = [
    `const { CApiSession } = await import(${JSON.stringify(session)})`,
    'CApiSession.libraryVersion()',
    'for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)) }',
    `const s = CApiSession.create(${JSON.stringify(llamaFile)}, { intraOpThreads: 1 })`,
    'console.log(s.inputMetadata.length)',
  ].join('\n')
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--import', loader, '--input-type=module', '-e', script])
  t.ok(Number(stdout) > 0, 'a session opens after the collections')
})

t.test('which binding a session gets', async (t) => {
  t.equal(resolveBinding({ executionProvider: 'cpu', intraOpThreads: 1, ortBinding: 'node' }), 'node')
  t.equal(resolveBinding({ executionProvider: 'cpu', intraOpThreads: 1, ortBinding: 'capi' }), 'capi')
  t.equal(resolveBinding({ executionProvider: 'cpu', intraOpThreads: 1 }), 'capi', 'auto, on the CPU where it loads: the C API')
  t.equal(resolveBinding({ executionProvider: 'cuda', intraOpThreads: 1, ortBinding: 'auto' }), 'node', 'auto on CUDA: onnxruntime-node')
  t.throws(() => resolveBinding({ executionProvider: 'cuda', intraOpThreads: 1, ortBinding: 'capi' }), ModelLoadError, 'capi on CUDA is refused')

  const capi = await loadModel(llamaDir, { executionProvider: 'cpu', intraOpThreads: 1, ortBinding: 'capi' })
  const node = await loadModel(llamaDir, { executionProvider: 'cpu', intraOpThreads: 1, ortBinding: 'node' })
  t.teardown(async () => {
    await capi.session.release()
    await node.session.release()
  })
  t.ok(capi.signature.presentInPlace && capi.spec.graphRewrites.includes('present_in_place') && !capi.signature.presentIsStep, 'capi: present written in place')
  t.ok(!node.signature.presentInPlace && node.spec.graphRewrites.includes('kv_step_outputs') && node.signature.presentIsStep, 'node: the new columns only')
})

t.test('decode passes that write present in place equal the cache with room, pass for pass', async (t) => {
  const capi = await loadModel(llamaDir, { executionProvider: 'cpu', intraOpThreads: 1, ortBinding: 'capi' })
  const node = await loadModel(llamaDir, { executionProvider: 'cpu', intraOpThreads: 1, ortBinding: 'node' })
  t.teardown(async () => {
    await capi.session.release()
    await node.session.release()
  })
  const spec = capi.spec
  const shape: KvShape = { numLayers: spec.numLayers, numKvHeads: spec.numKvHeads, headDim: spec.headDim }
  const inPlace = new ForwardRunner(capi.session, capi.signature, shape, capi.loraInputs)
  const room = new ForwardRunner(node.session, node.signature, shape, node.loraInputs)
  t.ok(inPlace.writesPresentInPlace && !room.writesPresentInPlace)
  // Rows of other lengths and prefixes: left padding and prefix holes in the cache.
  const rows = [
    { id: 1, promptIds: [1, 5, 6, 7, 8], adapters: [pastKv(seededPrefix(spec, 3, 7))] },
    { id: 2, promptIds: [1, 9], adapters: [] },
    { id: 3, promptIds: [1, 10, 11], adapters: [pastKv(seededPrefix(spec, 8, 8))] },
  ]
  const start = async (runner: ForwardRunner, roomColumns: number): Promise<{ state: KvState; tokens: number[] }> => {
    const { feed, state } = buildPrefill(shape, rows)
    const out = await runner.run(feed)
    const kv = prefillState(shape, feed, state.rowIds, state.nextPosition, out.stepKeys, out.stepValues, roomColumns)
    return { state: kv, tokens: rows.map((_, r) => Number(out.greedy!.tokens[r])) }
  }
  const a = await start(inPlace, 0)
  let b = await start(room, 4)
  t.same(a.tokens, b.tokens, 'the prefill picks the same tokens')
  let tokens = a.tokens
  const buffers: ArrayBufferLike[] = []
  for (let step = 0; step < 9; step++) {
    const feedA = buildDecode(a.state, tokens)
    feedA.presentInPlace = true
    const outA = await inPlace.run(feedA)
    b = { ...b, state: withRoom(shape, b.state) }
    const outB = await room.run(buildDecode(b.state, tokens))
    t.ok(maxAbsDiff(fetchedLogits(outA), fetchedLogits(outB)) < 1e-5, `step ${step}: the same logits`)
    t.equal(outA.stepKeys.length, 0, 'no step columns: the whole present is returned')
    buffers.push(outA.present!.keys[0].buffer)
    adoptPresent(a.state, outA.present!.keys, outA.present!.values)
    appendStep(shape, b.state, outB.stepKeys, outB.stepValues)
    t.equal(a.state.capacity, a.state.length, 'no free columns')
    tokens = rows.map((_, r) => Number(outA.greedy!.tokens[r]))
    t.same(tokens, rows.map((_, r) => Number(outB.greedy!.tokens[r])), `step ${step}: the same picks`)
  }
  t.not(buffers[1], buffers[0], 'a pass never writes where it reads its past')
  t.equal(buffers[2], buffers[0], 'two sets of buffers, used in turn')
  // The kept caches hold the same real positions (the room one has its free columns after them).
  const realRow = (s: KvState, r: number) => {
    const width = s.capacity + 1
    const cols: number[] = []
    for (let c = 0; c < s.length; c++) if (s.mask[r * width + c] === 1n) cols.push(c)
    return cols.flatMap((c) => Array.from(s.keys[1].subarray(((r * shape.numKvHeads + 1) * s.capacity + c) * shape.headDim, ((r * shape.numKvHeads + 1) * s.capacity + c + 1) * shape.headDim)))
  }
  for (let r = 0; r < rows.length; r++) t.ok(maxAbsDiff(realRow(a.state, r), realRow(b.state, r)) < 1e-5, `row ${r}: the same keys at its real positions`)
  t.same(a.state.nextPosition, b.state.nextPosition, 'the same next positions')
})
