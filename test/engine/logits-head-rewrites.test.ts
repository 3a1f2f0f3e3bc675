/**
 * The two rewrites at the LM head (graph/logits-to-keep.ts,
 * graph/greedy-pick.ts), on every decoder the project carries (the generated
 * llama and gpt2, whose head is a Gemm over flattened rows; stories260K and
 * the zoo's optimum exports, whose head is a MatMul): the graph that keeps
 * the last positions gives the same logits there as the graph without the
 * rewrites, and its greedy outputs are the pick and the logprob the engine's
 * own sampler makes from those logits. Then the greedy pick on a graph made
 * for it, against the sampler on rows with ties, NaN and infinities.
 */
import t, { type Test } from 'tap'
import { join } from 'node:path'
import { create } from '@bufbuild/protobuf'
import fc from 'fast-check'
import * as ort from 'onnxruntime-node'
import { GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema, TensorProto_DataType, type ModelProto } from 'onnx-buf'
import { buildDecode, buildPrefill, type ForwardFeed } from '../../src/engine/batch/forward-feed.js'
import { compact, prefillState } from '../../src/engine/batch/kv-state.js'
import { fetchedLogits, ForwardRunner, type ForwardResult } from '../../src/engine/forward-runner.js'
import { addGraphInput, addGraphOutput, newNode } from '../../src/engine/graph/graph-edit.js'
import { GREEDY_LOGPROB, GREEDY_LOGPROB_WANTED, GREEDY_TOKEN, greedyPick, greedyPickRewrite, vocabChunks } from '../../src/engine/graph/greedy-pick.js'
import type { GraphRewrite } from '../../src/engine/graph/graph-rewrite.js'
import { logitsToKeep } from '../../src/engine/graph/logits-to-keep.js'
import { encodeModelProto } from '../../src/engine/graph/model-proto.js'
import { MODEL_REWRITES } from '../../src/engine/graph/rewrites.js'
import { loadModel, type LoadedModel } from '../../src/engine/loaded-model.js'
import { normalizeSamplingParams, TokenSampler } from '../../src/engine/sampling/sampler.js'
import { generateTinyModel, pastKv, seededPrefix, tempDir } from '../helpers/batching-models.js'
import { closeness } from '../helpers/reference-compare.js'
import { storiesModelDir } from '../helpers/shared-data.js'
import { generatedModel } from '../helpers/tiny-model.js'
import { zoo } from '../helpers/zoo.js'

const dir = await tempDir(t, 'logits-head')
const WITHOUT_HEAD_REWRITES = MODEL_REWRITES.filter((r) => r !== logitsToKeep && r !== greedyPick)
const ZOO = ['bloom', 'falcon', 'gemma', 'gpt2', 'gpt_neo', 'gpt_neox', 'llama_gqa', 'opt', 'phi3', 'qwen2']

function runnerOf({ session, signature, spec, loraInputs }: LoadedModel): ForwardRunner {
  const shape = { numLayers: spec.numLayers, numKvHeads: spec.numKvHeads, headDim: spec.headDim, valueHeadDim: spec.valueHeadDim }
  return new ForwardRunner(session, signature, shape, loraInputs)
}

/** What the engine's greedy sampler picks from logits[offset…], with its logprob. */
function samplerPick(logits: Float32Array, offset: number, vocab: number): { tokenId: number; logprob: number } {
  const sampler = new TokenSampler(normalizeSamplingParams({ doSample: false, seed: 0 }), vocab)
  return sampler.select(logits, offset, [])
}

function checkPicks(t: Test, label: string, got: ForwardResult, logits: Float32Array, rows: number, vocab: number, rowOffset: (r: number) => number): void {
  t.ok(got.greedy, `${label}: the graph gives its greedy pick`)
  for (let r = 0; r < rows; r++) {
    const want = samplerPick(logits, rowOffset(r), vocab)
    t.equal(Number(got.greedy!.tokens[r]), want.tokenId, `${label}, row ${r}: the graph's pick is the sampler's`)
    t.ok(Math.abs(got.greedy!.logprobs[r] - want.logprob) <= 1e-4, `${label}, row ${r}: logprob ${got.greedy!.logprobs[r]} within 1e-4 of ${want.logprob}`)
  }
}

async function compareHeads(t: Test, modelDir: string): Promise<void> {
  const opts = { executionProvider: 'cpu' as const, intraOpThreads: 1 }
  const plain = await loadModel(modelDir, { ...opts, rewrites: WITHOUT_HEAD_REWRITES })
  const headed = await loadModel(modelDir, { ...opts, rewrites: MODEL_REWRITES })
  t.ok(headed.spec.graphRewrites.includes('logits_to_keep'), 'logits_to_keep applies')
  t.ok(headed.spec.graphRewrites.includes('greedy_pick'), 'greedy_pick applies')
  t.equal(plain.signature.hasLogitsToKeep, false)
  t.equal(headed.signature.hasLogitsToKeep, true)
  const { spec } = headed
  const V = spec.vocabSize
  const shape = { numLayers: spec.numLayers, numKvHeads: spec.numKvHeads, headDim: spec.headDim, valueHeadDim: spec.valueHeadDim }
  const ids = (n: number, from: number) => Array.from({ length: n }, (_, i) => (from + 7 * i) % V)
  // Prompts of different lengths (left padding) and prefixes of different lengths (holes in the past).
  const rows = [
    { id: 1, promptIds: ids(5, 3), adapters: [pastKv(seededPrefix(spec, 2, 11))] },
    { id: 2, promptIds: ids(2, 9), adapters: [pastKv(seededPrefix(spec, 4, 12))] },
  ]
  const { feed, state } = buildPrefill(shape, rows)
  const A = runnerOf(plain)
  const B = runnerOf(headed)
  const all = await A.run(feed)
  const allLogits = fetchedLogits(all)
  t.equal(all.positions, feed.seqLen, 'without the rewrite every position comes back')

  const last = await B.run({ ...feed, logitsToKeep: 1 })
  t.equal(last.positions, 1)
  const lastLogits = fetchedLogits(last)
  t.equal(lastLogits.length, rows.length * V, 'one position per row')
  const lastOf = (r: number) => (r * feed.seqLen + feed.seqLen - 1) * V
  for (let r = 0; r < rows.length; r++) {
    const close = closeness(lastLogits.subarray(r * V, (r + 1) * V), allLogits.subarray(lastOf(r), lastOf(r) + V))
    t.ok(close.ok, `row ${r}: last position's logits agree (max |d| ${close.maxDiff})`)
  }
  checkPicks(t, 'prefill', last, allLogits, rows.length, V, lastOf)

  const every = await B.run({ ...feed, logitsToKeep: feed.seqLen })
  t.equal(every.positions, feed.seqLen)
  t.ok(closeness(fetchedLogits(every), allLogits).ok, 'keeping every position gives every position')

  const pickOnly = await B.run({ ...feed, logitsToKeep: 1, fetchLogits: false })
  t.equal(pickOnly.logits, null, 'logits not fetched')
  t.same([...pickOnly.greedy!.tokens], [...last.greedy!.tokens], 'the same picks without the logits')
  const noLogprob = await B.run({ ...feed, logitsToKeep: 1, fetchLogits: false, greedyLogprobs: false })
  t.same([...noLogprob.greedy!.tokens], [...last.greedy!.tokens], 'the same picks without the logprob')
  t.same([...noLogprob.greedy!.logprobs], new Array(rows.length).fill(0), 'only the soundness mark: 0 for finite logits')

  // One decode step on the cache the prefill left: the same logits and picks.
  const cache = (r: ForwardResult) =>
    compact(shape, state.rowIds.map((_, row) => ({ state: prefillState(shape, feed, state.rowIds, [...state.nextPosition], r.stepKeys, r.stepValues), row })))
  const decodeFeed = (r: ForwardResult): ForwardFeed => buildDecode(cache(r), [4 % V, 5 % V])
  const decodedAll = await A.run(decodeFeed(all))
  const decoded = await B.run(decodeFeed(last))
  t.ok(closeness(fetchedLogits(decoded), fetchedLogits(decodedAll)).ok, 'decode step: the same logits')
  checkPicks(t, 'decode', decoded, fetchedLogits(decodedAll), rows.length, V, (r) => r * V)
}

for (const arch of ['llama', 'gpt2'] as const) {
  t.test(`generated ${arch} (Gemm head over flattened rows)`, async (t) => compareHeads(t, await generateTinyModel(dir, arch)))
}
t.test('stories260K (MatMul head)', (t) => compareHeads(t, storiesModelDir))
for (const family of ZOO) t.test(`zoo ${family}`, (t) => compareHeads(t, join(zoo, family, 'model')))

t.test('a float16 head keeps every position; its greedy pick still applies', async (t) => {
  const half = await loadModel(await generatedModel('llama', 'tiny', { dtype: 'float16' }), { executionProvider: 'cpu', intraOpThreads: 1 })
  t.notOk(half.spec.graphRewrites.includes('logits_to_keep'), 'no logits_to_keep on a float16 head')
  t.ok(half.spec.graphRewrites.includes('greedy_pick'), 'greedy_pick reads the float32 logits float32_io gives')
  t.equal(half.signature.hasLogitsToKeep, false)
})

/** A graph whose `logits` output is its input, with `rewrite` applied: greedy_pick alone on rows the test chooses. */
function pickModel(opset: number, vocab: number, rewrite: GraphRewrite = greedyPick): ModelProto {
  const graph = create(GraphProtoSchema, { name: 'logits-only' })
  addGraphInput(graph, 'scores', TensorProto_DataType.FLOAT, ['batch', 'positions', vocab])
  addGraphOutput(graph, 'logits', TensorProto_DataType.FLOAT, ['batch', 'positions', vocab])
  graph.node.push(newNode('Identity', 'identity', ['scores'], ['logits']))
  const model = create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(opset) })], graph })
  t.equal(rewrite.needed(model), true)
  rewrite.apply(model)
  t.equal(rewrite.needed(model), false, 'applied once')
  return model
}

function pickSession(opset: number, vocab: number, rewrite: GraphRewrite = greedyPick): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(encodeModelProto(pickModel(opset, vocab, rewrite)), { intraOpNumThreads: 1, interOpNumThreads: 1 })
}

const specialRow = (vocab: number) =>
  fc.array(
    fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: -4, max: 4 }).map((x) => x / 2) },
      { weight: 1, arbitrary: fc.constantFrom(Number.NaN, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY) },
    ),
    { minLength: vocab, maxLength: vocab },
  )

// 7 is prime (one ArgMax over the whole vocabulary); 9, 12 and 30 are cut into chunks (3×3, 3×4, 5×6);
// opset 11 and the whole-vocabulary variant scan 12 in one ArgMax.
const pickCases: Array<[number, number, GraphRewrite, string]> = [
  [13, 7, greedyPick, 'chunked where it can'],
  [13, 12, greedyPick, 'chunked where it can'],
  [18, 9, greedyPick, 'chunked where it can'],
  [18, 30, greedyPick, 'chunked where it can'],
  [11, 12, greedyPick, 'chunked where it can'],
  [18, 12, greedyPickRewrite({ chunked: false }), 'one ArgMax'],
]
/**
 * What greedy_logprob must be for one row: with the logprob wanted, the
 * sampler's, and NaN exactly where the pick must not be used; without it, the
 * soundness mark: 0 where the row sums to a finite number, else NaN (these
 * small rows cannot overflow; a -Infinity beside finite logits marks the row
 * too, by design).
 */
function checkLogprob(row: number[], got: number, want: { logprob: number } | null, untrusted: boolean, wanted: boolean): string | null {
  if (wanted) {
    if (Number.isFinite(got) === untrusted) return `graph logprob ${got}, sampler ${JSON.stringify(want)}`
    if (!untrusted && !(Math.abs(got - want!.logprob) <= 1e-5)) return `logprob ${got} vs ${want!.logprob}`
    return null
  }
  const marked = untrusted || row.includes(Number.NEGATIVE_INFINITY)
  return (marked ? Number.isNaN(got) : got === 0) ? null : `soundness mark ${got}, want ${marked ? 'NaN' : 0}`
}

for (const [opset, vocab, rewrite, label] of pickCases) {
  t.test(`greedy_pick (${label}, opset ${opset}, vocabulary ${vocab}) against the sampler: ties, NaN, infinities (a NaN logprob where the pick must not be used), the logprob wanted or not`, async (t) => {
    const session = await pickSession(opset, vocab, rewrite)
    // A [batch, positions] grid of rows, as a prefill keeping several positions feeds it.
    const batches = fc
      .tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.boolean())
      .chain(([batch, positions, wanted]) =>
        fc.record({ batch: fc.constant(batch), positions: fc.constant(positions), wanted: fc.constant(wanted), rows: fc.array(specialRow(vocab), { minLength: batch * positions, maxLength: batch * positions }) }),
      )
    await fc.assert(
      fc.asyncProperty(batches, async ({ batch, positions, wanted, rows }) => {
        const data = Float32Array.from(rows.flat())
        const out = await session.run({ scores: new ort.Tensor('float32', data, [batch, positions, vocab]), [GREEDY_LOGPROB_WANTED]: new ort.Tensor('bool', Uint8Array.of(wanted ? 1 : 0), [1]) })
        for (const name of [GREEDY_TOKEN, GREEDY_LOGPROB]) {
          if (out[name].dims.join() !== [batch, positions].join()) throw new Error(`${name} dims ${out[name].dims}, want [${batch}, ${positions}]`)
        }
        const tokens = out[GREEDY_TOKEN].data as BigInt64Array
        const logprobs = out[GREEDY_LOGPROB].data as Float32Array
        rows.forEach((row, r) => {
          let want: { tokenId: number; logprob: number } | null = null
          try {
            want = samplerPick(data, r * vocab, vocab)
          } catch {
            // The sampler refuses the row (no finite maximum).
          }
          const untrusted = row.some((x) => Number.isNaN(x)) || want === null
          const wrong = checkLogprob(row, logprobs[r], want, untrusted, wanted)
          if (wrong !== null) throw new Error(`row ${r} ${JSON.stringify(row)}, logprob wanted ${wanted}: ${wrong}`)
          if (untrusted) return
          if (Number(tokens[r]) !== want!.tokenId) throw new Error(`row ${r} ${JSON.stringify(row)}: graph ${tokens[r]}, sampler ${want!.tokenId}`)
        })
      }),
      { numRuns: 200, seed: 4242 },
    )
    t.pass('200 batches of rows agree')
  })
}

t.test('the argmax is cut into chunks when the vocabulary divides and the opset has GatherND batch_dims', async (t) => {
  t.same(vocabChunks(32000, 17), { chunks: 160, width: 200 }, 'the most chunks up to √32000 that divide it')
  t.same(vocabChunks(50257, 17), { chunks: 29, width: 1733 })
  t.same(vocabChunks(16, 13), { chunks: 4, width: 4 })
  t.equal(vocabChunks(7, 17), null, 'a prime vocabulary: one ArgMax')
  t.equal(vocabChunks(32000, 11), null, 'opset 11: no GatherND batch_dims')
  t.equal(vocabChunks(null, 17), null, 'a symbolic vocabulary axis')
  const gathers = (model: ModelProto) => model.graph!.node.filter((n) => n.opType === 'GatherND').length
  t.equal(gathers(pickModel(13, 12)), 1, 'vocabulary 12 at opset 13: the chunked scan')
  t.equal(gathers(pickModel(13, 7)), 0, 'vocabulary 7: one ArgMax')
  t.equal(gathers(pickModel(11, 12)), 0, 'opset 11: one ArgMax')
  t.equal(gathers(pickModel(13, 12, greedyPickRewrite({ chunked: false }))), 0, 'the whole-vocabulary variant: one ArgMax')
})
