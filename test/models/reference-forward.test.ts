import { join } from 'node:path'
import t from 'tap'
import * as ort from 'onnxruntime-node'
import { buildDecoderGraph, buildWeights, generateModel, writeOnnxModel, type ModelArch, type ModelDims, type ModelWeights } from '../../src/models/generate/index.js'
import { mulberry32 } from '../../src/models/generate/prng.js'
import type { PrefixKV } from '../../src/domain/prefix-kv.js'
import { decodeStep, logitsAt, prefillStep, type BatchRow, type BatchStep } from '../helpers/reference-batch.js'
import { argmax, closeness } from '../helpers/reference-compare.js'
import { referenceForward } from '../helpers/reference-forward.js'
import { randomPrefix } from '../helpers/reference-prefix.js'
import { loadStoriesPrefix, loadStoriesWeights, readStoriesExpected, STORIES_MODEL_DIR, STORIES_PREFIXES_DIR } from '../helpers/reference-stories.js'

// The test object tap passes to a callback, plugins included (testdir, teardown).
type Test = Parameters<Parameters<typeof t.test>[0]>[0]

function expectClose(t: Test, actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  const c = closeness(actual, expected)
  t.ok(c.ok, `${what}: max |diff| ${c.maxDiff.toExponential(2)} <= ${c.bound.toExponential(2)}`)
}

function randomTokens(dims: ModelDims, count: number, seed: number): number[] {
  const random = mulberry32(seed)
  return Array.from({ length: count }, () => Math.floor(random() * dims.vocabSize))
}

function range(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => from + i)
}

function allFinite(tensor: ort.Tensor): boolean {
  return (tensor.data as Float32Array).every(Number.isFinite)
}

async function openSession(t: Test, path: string): Promise<ort.InferenceSession> {
  const session = await ort.InferenceSession.create(path)
  t.teardown(() => session.release())
  return session
}

/** The reference's logits at the last token of `row`. */
function referenceLast(weights: ModelWeights, row: BatchRow): Float64Array {
  return referenceForward(weights, row.tokens, row.positions, row.prefix).at(-1)!
}

async function checkGenerated(t: Test, arch: ModelArch): Promise<void> {
  const dir = t.testdir()
  await generateModel({ arch, size: 'tiny', out: dir })
  const weights = buildWeights(arch, 'tiny')
  const dims = weights.dims
  const session = await openSession(t, join(dir, 'model.onnx'))
  const prompt = randomTokens(dims, 7, 1)
  const P = 5
  const prefix = randomPrefix(dims, P, 2)

  const plain = await session.run(prefillStep(dims, [{ tokens: prompt, positions: range(0, prompt.length) }]).feeds)
  const plainReference = referenceForward(weights, prompt, range(0, prompt.length))
  plainReference.forEach((expected, i) => expectClose(t, logitsAt(plain.logits as ort.Tensor, 0, i), expected, `no prefix, position ${i}`))

  // PEFT's layout: prefix in the past, mask ones over prefix + prompt, positions P..P+n-1.
  const prefixed: BatchRow = { tokens: prompt, positions: range(P, prompt.length), prefix }
  const step = prefillStep(dims, [prefixed])
  t.same(step.mask[0], Array(P + prompt.length).fill(1))
  const withPrefix = await session.run(step.feeds)
  const prefixReference = referenceForward(weights, prompt, prefixed.positions, prefix)
  prefixReference.forEach((expected, i) => expectClose(t, logitsAt(withPrefix.logits as ort.Tensor, 0, i), expected, `prefix P=${P}, position ${i}`))
  const shift = closeness(prefixReference.at(-1)!, plainReference.at(-1)!, 1e-2)
  t.notOk(shift.ok, `the prefix changes the logits (max |diff| ${shift.maxDiff.toFixed(3)})`)

  // Incremental decode: present fed back as past, one new token.
  const next = argmax(logitsAt(withPrefix.logits as ort.Tensor, 0, prompt.length - 1))
  const decoded = await session.run(decodeStep(dims, step, withPrefix, [next], [P + prompt.length]).feeds)
  t.same((decoded['present.0.key'] as ort.Tensor).dims, [1, dims.numKvHeads, P + prompt.length + 1, dims.headDim])
  const full = referenceForward(weights, [...prompt, next], range(P, prompt.length + 1), prefix)
  expectClose(t, logitsAt(decoded.logits as ort.Tensor, 0, 0), full.at(-1)!, 'decode step after the prefixed prompt')

  await checkMixedBatch(t, session, weights)
}

/**
 * Rows with no prefix, a short one and a long one, prompts of different
 * lengths, and a row of pure padding (a free batch slot): every real row's
 * logits must equal that row run alone, in prefill and in a decode step, and
 * the fully masked queries (left padding with no prefix, the padding row)
 * must stay finite.
 */
async function checkMixedBatch(t: Test, session: ort.InferenceSession, weights: ModelWeights): Promise<void> {
  const dims = weights.dims
  const shapes = [
    { P: 0, n: 4 },
    { P: 3, n: 7 },
    { P: 6, n: 5 },
  ]
  const rows: BatchRow[] = shapes.map(({ P, n }, r) => ({
    tokens: randomTokens(dims, n, 10 + r),
    positions: range(P, n),
    prefix: P > 0 ? randomPrefix(dims, P, 20 + r) : undefined,
  }))
  const padding: BatchRow = { tokens: [], positions: [] }
  const step = prefillStep(dims, [...rows, padding])
  t.same(step.mask[rows.length], Array(step.mask[0].length).fill(0), 'the padding row is masked out entirely')
  const out = await session.run(step.feeds)
  t.ok(allFinite(out.logits as ort.Tensor), 'batch logits are finite, padding included')
  const next: number[] = []
  for (const [r, row] of rows.entries()) {
    const batched = logitsAt(out.logits as ort.Tensor, r, step.chunkLength - 1)
    const alone = await session.run(prefillStep(dims, [row]).feeds)
    const aloneLast = logitsAt(alone.logits as ort.Tensor, 0, row.tokens.length - 1)
    expectClose(t, batched, aloneLast, `batch row ${r} (P=${shapes[r].P}) equals the row alone`)
    expectClose(t, batched, referenceLast(weights, row), `batch row ${r} matches the reference`)
    t.equal(argmax(batched), argmax(aloneLast), `batch row ${r}: same greedy token as alone`)
    next.push(argmax(batched))
  }
  const nextPositions = rows.map((row) => row.positions.at(-1)! + 1)
  const decoded = await session.run(decodeStep(dims, step, out, [...next, 0], [...nextPositions, 0]).feeds)
  t.ok(allFinite(decoded.logits as ort.Tensor), 'decode logits are finite')
  rows.forEach((row, r) => {
    const extended: BatchRow = { ...row, tokens: [...row.tokens, next[r]], positions: [...row.positions, nextPositions[r]] }
    expectClose(t, logitsAt(decoded.logits as ort.Tensor, r, 0), referenceLast(weights, extended), `batch decode row ${r} matches the reference`)
  })
}

t.test('tiny llama (grouped-query): ONNX Runtime matches the reference', (t) => checkGenerated(t, 'llama'))
t.test('tiny gpt2: ONNX Runtime matches the reference', (t) => checkGenerated(t, 'gpt2'))

/** Greedy decoding of `rows` together, through prefill then decode steps. */
async function greedyBatch(session: ort.InferenceSession, dims: ModelDims, rows: BatchRow[], steps: number): Promise<number[][]> {
  let step: BatchStep = prefillStep(dims, rows)
  let out = await session.run(step.feeds)
  const generated: number[][] = rows.map(() => [])
  const positions = rows.map((row) => row.positions.at(-1)!)
  for (let s = 0; s < steps; s++) {
    const last = step.chunkLength - 1
    const next = rows.map((_, r) => argmax(logitsAt(out.logits as ort.Tensor, r, last)))
    next.forEach((token, r) => generated[r].push(token))
    if (s === steps - 1) break
    step = decodeStep(dims, step, out, next, positions.map((p, r) => (positions[r] = p + 1)))
    out = await session.run(step.feeds)
  }
  return generated
}

t.test('stories260K: the reference and the generator graph reproduce transformers and PEFT', async (t) => {
  const weights = loadStoriesWeights()
  const dims = weights.dims
  const base = readStoriesExpected(`${STORIES_MODEL_DIR}expected-base.json`)
  const adapters = ['dog-max', 'robot-benny'].map((name) => ({
    prefix: loadStoriesPrefix(name, dims),
    expected: readStoriesExpected(`${STORIES_PREFIXES_DIR}${name}/expected.json`),
  }))
  const rowFor = (ids: number[], prefix?: PrefixKV): BatchRow => ({ tokens: ids, positions: range(prefix?.numVirtualTokens ?? 0, ids.length), prefix })

  const baseLogits = base.last_prompt_position_logits
  expectClose(t, referenceLast(weights, rowFor(baseLogits.prompt_ids)), baseLogits.values, 'reference vs transformers, no prefix')
  for (const { prefix, expected } of adapters) {
    const logits = expected.last_prompt_position_logits
    expectClose(t, referenceLast(weights, rowFor(logits.prompt_ids, prefix)), logits.values, `reference vs PEFT, P=${prefix.numVirtualTokens}`)
  }

  const dir = t.testdir()
  await writeOnnxModel(join(dir, 'model.onnx'), buildDecoderGraph(weights))
  const session = await openSession(t, join(dir, 'model.onnx'))
  const solo = await session.run(prefillStep(dims, [rowFor(baseLogits.prompt_ids)]).feeds)
  expectClose(t, logitsAt(solo.logits as ort.Tensor, 0, baseLogits.prompt_ids.length - 1), baseLogits.values, 'generator graph vs transformers')

  // One mixed batch, as the server runs it: no prefix, P=8 and P=16, prompts of different lengths.
  const cases = [
    { prefix: undefined, expected: base.cases[1] },
    { prefix: adapters[0].prefix, expected: adapters[0].expected.cases[0] },
    { prefix: adapters[1].prefix, expected: adapters[1].expected.cases[2] },
  ]
  const steps = Math.min(...cases.map((c) => c.expected.generated_ids.length))
  const generated = await greedyBatch(session, dims, cases.map((c) => rowFor(c.expected.prompt_ids, c.prefix)), steps)
  cases.forEach((c, r) => t.same(generated[r], c.expected.generated_ids.slice(0, steps), `greedy batch row ${r} ("${c.expected.prompt}") matches ${c.prefix ? 'PEFT' : 'transformers'}`))
})
