/**
 * The per-row LoRA graph rewrite, on real exports: stories260K (PyTorch's
 * Llama export, MatMul projections) and optimum's GPT-2 (Conv1D as Gemm).
 * - With no LoRA (rank 0, or rows of zeros) the derived graph gives the
 *   original's logits and present key/values bit for bit.
 * - With a different LoRA per row (different ranks, modules, one row none),
 *   each row equals the original graph run alone with that row's LoRA merged
 *   into its weights (W + s·Aᵀ·Bᵀ): the unmerged batched update is the merge.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { fromBinary, toBinary } from '@bufbuild/protobuf'
import { ModelProtoSchema, type ModelProto } from 'onnx-buf'
import t from 'tap'
import { buildLoraFeed, type LoraInput } from '../../src/engine/batch/lora-feed.js'
import { findLoraProjections } from '../../src/engine/graph/lora-projections.js'
import { LORA_INPUT, loraRewrite, withLoraTargets } from '../../src/engine/graph/lora-rewrite.js'
import { MODEL_REWRITES } from '../../src/engine/graph/rewrites.js'
import { float32Io } from '../../src/engine/graph/float32-io.js'
import { generateModel } from '../../src/models/generate/index.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { readLoraInputs } from '../../src/engine/lora-signature.js'
import type { TensorMeta } from '../../src/engine/onnx-signature.js'
import { mulberry32 } from '../../src/models/generate/prng.js'
import type { LoraAdapter, LoraModule } from '../../src/prefixes/lora-adapter.js'
import { storiesModelDir } from '../helpers/shared-data.js'

const GPT2 = fileURLToPath(new URL('../fixtures/zoo/gpt2/model/model.onnx', import.meta.url))
const STORIES = join(storiesModelDir, 'model.onnx')
const OPTIONS: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: 1 }

const readModel = (file: string): ModelProto => fromBinary(ModelProtoSchema, readFileSync(file))
const session = (model: ModelProto) => ort.InferenceSession.create(toBinary(ModelProtoSchema, model), OPTIONS)
const metadata = (s: ort.InferenceSession) => (s as unknown as { inputMetadata: TensorMeta[] }).inputMetadata

function derived(file: string): ModelProto {
  const model = readModel(file)
  loraRewrite.apply(model)
  return model
}

/** Seeded inputs for `rows` rows: `past` random past positions then `seq` new tokens, all attended. */
function baseFeeds(meta: readonly TensorMeta[], rows: number, past: number, seq: number, seed: number): Record<string, ort.Tensor> {
  const random = mulberry32(seed)
  const feeds: Record<string, ort.Tensor> = {}
  for (const m of meta) {
    if (m.name === 'input_ids') feeds[m.name] = new ort.Tensor('int64', BigInt64Array.from({ length: rows * seq }, () => BigInt(3 + Math.floor(random() * 500))), [rows, seq])
    else if (m.name === 'attention_mask') feeds[m.name] = new ort.Tensor('int64', new BigInt64Array(rows * (past + seq)).fill(1n), [rows, past + seq])
    else if (m.name === 'position_ids') feeds[m.name] = new ort.Tensor('int64', BigInt64Array.from({ length: rows * seq }, (_, i) => BigInt(past + (i % seq))), [rows, seq])
    else if (m.name.startsWith('past_key_values.')) {
      const [heads, headDim] = [m.shape![1] as number, m.shape![3] as number]
      feeds[m.name] = new ort.Tensor('float32', Float32Array.from({ length: rows * heads * past * headDim }, () => random() * 2 - 1), [rows, heads, past, headDim])
    }
  }
  return feeds
}

/** One row's slice of every batched input. */
function rowOf(feeds: Record<string, ort.Tensor>, row: number): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {}
  for (const [name, t] of Object.entries(feeds)) {
    const per = t.data.length / t.dims[0]
    const data = t.data as Float32Array | BigInt64Array
    out[name] = new ort.Tensor(t.type as 'float32', data.slice(row * per, (row + 1) * per) as Float32Array, [1, ...t.dims.slice(1)])
  }
  return out
}

function maxAbsDiff(a: ort.Tensor, b: ort.Tensor): number {
  const [x, y] = [a.data as Float32Array, b.data as Float32Array]
  if (x.length !== y.length) return Infinity
  let max = 0
  for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i] - y[i]))
  return max
}

function loraFeeds(inputs: readonly LoraInput[], rows: readonly (LoraAdapter | null)[]): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {}
  for (const [name, t] of buildLoraFeed(inputs, rows)) out[name] = new ort.Tensor('float32', t.data, t.dims)
  return out
}

function randomAdapter(inputs: readonly LoraInput[], keys: (key: string) => boolean, rank: number, seed: number): LoraAdapter {
  const random = mulberry32(seed)
  const values = (n: number) => Float32Array.from({ length: n }, () => (random() * 2 - 1) * 0.3)
  const modules: LoraModule[] = inputs
    .filter((i) => keys(i.key))
    .map((i) => ({ key: i.key, inFeatures: i.inFeatures, outFeatures: i.outFeatures, a: values(i.inFeatures * rank), b: values(rank * i.outFeatures) }))
  return { config: { rank, alpha: rank, useRslora: false, scaling: 1, targetModules: [] }, rank, modules, dtype: 'F32' }
}

/** The original graph with `adapter` merged into its weights: W[in, out] += a[in, r] · b[r, out]. */
function mergedModel(file: string, adapter: LoraAdapter): ModelProto {
  const model = readModel(file)
  const projections = new Map(findLoraProjections(model.graph!).map((p) => [p.key, p]))
  for (const m of adapter.modules) {
    const node = projections.get(m.key)!.sites[0].node
    const init = model.graph!.initializer.find((x) => x.name === node.input[1])!
    const w = new Float32Array(Uint8Array.from(init.rawData).buffer)
    const transB = node.attribute.find((a) => a.name === 'transB')?.i === 1n
    const rank = m.a.length / m.inFeatures
    for (let i = 0; i < m.inFeatures; i++) {
      for (let o = 0; o < m.outFeatures; o++) {
        let delta = 0
        for (let r = 0; r < rank; r++) delta += m.a[i * rank + r] * m.b[r * m.outFeatures + o]
        w[transB ? o * m.inFeatures + i : i * m.outFeatures + o] += delta
      }
    }
    init.rawData = new Uint8Array(w.buffer)
  }
  return model
}

for (const [label, file] of [['stories260K (MatMul)', STORIES], ['optimum GPT-2 (Gemm)', GPT2]] as const) {
  t.test(`${label}: without LoRA the derived graph is the original, bit for bit`, async (t) => {
    const original = await session(readModel(file))
    const rewritten = await session(derived(file))
    const inputs = readLoraInputs(metadata(rewritten))
    t.ok(inputs.length > 0, 'the derived graph takes LoRA inputs')
    const feeds = baseFeeds(metadata(original), 3, 2, 4, 7)
    const want = await original.run(feeds)
    const zeroRank = await rewritten.run({ ...feeds, ...loraFeeds(inputs, [null, null, null]) })
    const zeroRows = randomAdapter(inputs, () => true, 2, 1)
    zeroRows.modules.forEach((m) => (m.a.fill(0), m.b.fill(0)))
    const zeros = await rewritten.run({ ...feeds, ...loraFeeds(inputs, [zeroRows, null, zeroRows]) })
    for (const name of original.outputNames) {
      t.equal(maxAbsDiff(want[name], zeroRank[name]), 0, `${name}, rank 0`)
      t.equal(maxAbsDiff(want[name], zeros[name]), 0, `${name}, rows of zeros`)
    }
  })

  t.test(`${label}: each row with its own LoRA equals that LoRA merged, run alone`, async (t) => {
    const rewritten = await session(derived(file))
    const inputs = readLoraInputs(metadata(rewritten))
    const keys = inputs.map((i) => i.key)
    // Different ranks and modules per row, and a row with none: padding and zero rows in one batch.
    const rows = [
      randomAdapter(inputs, (k) => k === keys[0] || k === keys.at(-1), 2, 11),
      null,
      randomAdapter(inputs, (k) => keys.indexOf(k) % 2 === 0, 3, 12),
      randomAdapter(inputs, () => true, 1, 13),
    ]
    const feeds = baseFeeds(metadata(rewritten), rows.length, 3, 5, 21)
    const batched = await rewritten.run({ ...feeds, ...loraFeeds(inputs, rows) })
    const original = await session(readModel(file))
    for (let r = 0; r < rows.length; r++) {
      const reference = rows[r] ? await session(mergedModel(file, rows[r]!)) : original
      const alone = await reference.run(rowOf(baseFeeds(metadata(original), rows.length, 3, 5, 21), r))
      const mine = rowOf(batched as Record<string, ort.Tensor>, r)
      for (const name of ['logits', 'present.0.key', 'present.1.value']) {
        const diff = maxAbsDiff(alone[name], mine[name])
        t.ok(diff < 1e-4, `row ${r} (${rows[r] ? `rank ${rows[r]!.rank}` : 'no LoRA'}) ${name}: max |Δ| ${diff}`)
      }
      if (rows[r]) {
        const without = await original.run(rowOf(feeds, r))
        t.ok(maxAbsDiff(without.logits, mine.logits) > 1e-3, `row ${r}: the LoRA changes the logits`)
      }
    }
  })
}

t.test('projections are found by structure in both exports', async (t) => {
  const gpt2 = findLoraProjections(readModel(GPT2).graph!)
  t.same(
    gpt2.filter((p) => p.key.startsWith('h.0.')).map((p) => [p.key, p.inFeatures, p.outFeatures]),
    [['h.0.attn.c_attn', 64, 192], ['h.0.attn.c_proj', 64, 64], ['h.0.mlp.c_fc', 64, 128], ['h.0.mlp.c_proj', 128, 64]],
    'GPT-2: c_attn, both c_proj (attention and MLP) and c_fc',
  )
  t.equal(gpt2.length, 8, '4 per layer, 2 layers: attention products and lm_head are not projections')
  const stories = readModel(STORIES)
  t.ok(loraRewrite.needed(stories))
  loraRewrite.apply(stories)
  t.notOk(loraRewrite.needed(stories), 'a derived graph is not rewritten twice')
})

t.test('LORA_TARGET_MODULES: peft (default), all, none, or the named leaf modules only', async (t) => {
  const loraInputsAfter = (setting: string | undefined, modelType = 'llama'): string[] => {
    const model = readModel(STORIES)
    for (const r of withLoraTargets(MODEL_REWRITES, setting, modelType)) if (r.needed(model)) r.apply(model)
    return model.graph!.input.map((i) => i.name).filter((n) => LORA_INPUT.test(n))
  }
  const qvDefault = loraInputsAfter(undefined)
  t.equal(qvDefault.length, 2 * 10, "default (peft): PEFT's default target modules for Llama, q_proj and v_proj")
  t.ok(qvDefault.every((n) => /\.(q|v)_proj\.[AB]$/.test(n)))
  t.same(loraInputsAfter('peft', 'gpt2'), [], "peft for GPT-2 is c_attn, which this Llama graph does not have")
  t.equal(loraInputsAfter('peft', 'some_new_family').length, 2 * 35, 'a model type PEFT has no default for: every projection')
  t.equal(loraInputsAfter('all').length, 2 * 35)
  t.same(loraInputsAfter('none'), [], 'none: the model loads as it is')
  const qv = loraInputsAfter('q_proj,v_proj')
  t.equal(qv.length, 2 * 10)
  t.ok(qv.every((n) => /\.(q|v)_proj\.[AB]$/.test(n)), 'only q_proj and v_proj take LoRA inputs')
  t.same(loraInputsAfter('c_attn'), [], 'a name the model does not have targets nothing')
})

t.test('float16 and merged (If) decoders: factors cast to the weights\' type, every branch updated, exact without LoRA', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'prefixd-lora-layouts-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const [label, layout, file] of [
    ['float16', { dtype: 'float16', separateProjections: true }, 'model.onnx'],
    ['merged decoder', { merged: true, separateProjections: true }, 'decoder_model_merged.onnx'],
  ] as const) {
    const out = join(dir, label.replace(/\W/g, '-'))
    await generateModel({ arch: 'llama', size: 'tiny', out, seed: 3, layout })
    const path = join(out, file)
    const projections = findLoraProjections(readModel(path).graph!)
    t.equal(projections.length, 2 * 7, `${label}: seven projections in each of 2 layers`)
    if (label === 'merged decoder') t.ok(projections.every((p) => p.sites.length === 2), 'each found in both If branches')
    // As the server derives it: float16 needs float32_io at the boundary, the merged decoder use_cache_branch.
    const plain = readModel(path)
    if (float32Io.needed(plain)) float32Io.apply(plain)
    const lora = derived(path)
    if (float32Io.needed(lora)) float32Io.apply(lora)
    const original = await session(plain)
    const rewritten = await session(lora)
    const inputs = readLoraInputs(metadata(rewritten))
    const feeds = baseFeeds(metadata(original), 2, 3, 4, 5)
    if (metadata(original).some((m) => m.name === 'use_cache_branch')) feeds.use_cache_branch = new ort.Tensor('bool', new Uint8Array([1]), [1])
    const want = await original.run(feeds)
    const none = await rewritten.run({ ...feeds, ...loraFeeds(inputs, [null, null]) })
    t.equal(maxAbsDiff(want.logits, none.logits), 0, `${label}: no LoRA, the same logits bit for bit`)
    const withLora = await rewritten.run({ ...feeds, ...loraFeeds(inputs, [randomAdapter(inputs, () => true, 4, 31), null]) })
    const [a, b] = [rowOf(want as Record<string, ort.Tensor>, 0), rowOf(withLora as Record<string, ort.Tensor>, 0)]
    t.ok(maxAbsDiff(a.logits, b.logits) > 1e-3, `${label}: a LoRA row changes its logits`)
    t.equal(maxAbsDiff(rowOf(want as Record<string, ort.Tensor>, 1).logits, rowOf(withLora as Record<string, ort.Tensor>, 1).logits), 0, `${label}: the row without LoRA is untouched`)
  }
})
