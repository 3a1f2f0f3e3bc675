/**
 * Model files as deployments write them, made by the generator (no Python):
 * float16 weights, key/values and logits; weights in external data
 * (model.onnx + model.onnx_data); optimum 1.x's decoder_model_merged.onnx
 * with its use_cache_branch If; and all three at once. Each is served over
 * HTTP with an uploaded PEFT adapter, and its ids, one request at a time and
 * all at once, equal onnxruntime's own greedy loop on that very file fed
 * one request alone (float16 in float16). External data and the merged graph
 * change no number, so they must also give the plain model's ids.
 */
import t, { type Test } from 'tap'
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { TensorProto_DataType } from 'onnx-buf'
import { readModelProto } from '../../src/engine/graph/model-proto.js'
import { findModelFile } from '../../src/engine/onnx-session.js'
import { TextTokenizer } from '../../src/engine/tokenizer.js'
import type { ModelLayout } from '../../src/models/generate/index.js'
import { readPeftAdapter } from '../../src/prefixes/peft-adapter.js'
import { startApp, type GenerateReply } from '../helpers/app.js'
import { OrtGreedy } from '../helpers/ort-greedy.js'
import { buildPeftAdapter } from '../helpers/prefix-fixtures.js'
import { upload } from '../helpers/prefix-upload.js'
import { generatedModel } from '../helpers/tiny-model.js'

const PROMPTS = ['Once upon a time there was', 'The cat', 'A little girl named Lily went to the park']
const NEW_TOKENS = 12

const SHAPES = { llama: { layers: 2, heads: 2, headDim: 16 }, gpt2: { layers: 2, heads: 4, headDim: 16 } }
type Arch = keyof typeof SHAPES

interface Served {
  /** /info's graph_rewrites. */
  rewrites: string[]
  alone: number[][]
  together: number[][]
  reference: number[][]
}

/** Serves the model with two uploaded adapters and collects every case's ids three ways. */
async function serveAndCompare(t: Test, arch: Arch, layout: ModelLayout): Promise<Served> {
  const dir = await generatedModel(arch, 'tiny', layout)
  const store = mkdtempSync(join(tmpdir(), 'prefixd-layout-'))
  t.teardown(() => rmSync(store, { recursive: true, force: true }))
  const app = await startApp(t, dir, { PREFIX_DIR: store })
  const rewrites = ((await app.inject({ method: 'GET', url: '/info' })).json() as { graph_rewrites: string[] }).graph_rewrites
  const shape = SHAPES[arch]
  const adapters = [4, 7].map((P, i) => buildPeftAdapter({ layers: shape.layers, kvHeads: shape.heads, headDim: shape.headDim, P, seed: 11 + i }))
  for (const [i, a] of adapters.entries()) {
    const r = await upload(app, 'POST', '/prefixes', { 'adapter_config.json': a.configJson, 'adapter_model.safetensors': a.safetensors }, { id: `p${i}` })
    t.equal(r.status, 201, `upload p${i}`)
  }
  const jobs = PROMPTS.flatMap((prompt) => [undefined, 0, 1].map((adapter) => ({ prompt, adapter })))
  const generate = async (prompt: string, adapter: number | undefined): Promise<number[]> => {
    const parameters = { max_new_tokens: NEW_TOKENS, details: true, ...(adapter === undefined ? {} : { prefix_id: `p${adapter}` }) }
    const res = await app.inject({ method: 'POST', url: '/generate', payload: { inputs: prompt, parameters } })
    return (res.json() as GenerateReply).details!.tokens.map((x) => x.id)
  }
  const alone: number[][] = []
  for (const j of jobs) alone.push(await generate(j.prompt, j.adapter))
  const together = await Promise.all(jobs.map((j) => generate(j.prompt, j.adapter)))

  const tokenizer = await TextTokenizer.load(dir, 1)
  const ort = await OrtGreedy.open(await findModelFile(dir))
  t.teardown(() => ort.close())
  const prefixes = adapters.map((a) => readPeftAdapter(a.configJson, a.safetensors).prefix)
  const reference: number[][] = []
  for (const j of jobs) {
    const prefix = j.adapter === undefined ? undefined : prefixes[j.adapter]
    reference.push(await ort.generate(tokenizer.encode(j.prompt), NEW_TOKENS, shape, prefix))
  }
  return { rewrites, alone, together, reference }
}

function checkServed(t: Test, served: Served, what: string): void {
  t.equal(served.alone.length, PROMPTS.length * 3)
  t.ok(served.alone.every((ids) => ids.length === NEW_TOKENS), 'every request generated all its tokens')
  t.same(served.alone, served.reference, `${what}: one at a time equals onnxruntime on the file`)
  t.same(served.together, served.reference, `${what}: all at once equals onnxruntime on the file`)
  // Cases come as [base, p0, p1] per prompt: the prefixes must matter somewhere, or the test proves nothing about them.
  const changed = served.reference.filter((ids, i) => i % 3 !== 0 && JSON.stringify(ids) !== JSON.stringify(served.reference[i - (i % 3)]))
  t.ok(changed.length > 0, `the prefixes change ${changed.length} of ${PROMPTS.length * 2} outputs`)
}

const plain: Partial<Record<Arch, Served>> = {}

t.test('the plain float32 model: the baseline', async (t) => {
  for (const arch of ['llama', 'gpt2'] as const) {
    plain[arch] = await serveAndCompare(t, arch, {})
    checkServed(t, plain[arch], `${arch} plain`)
    t.notOk(plain[arch].rewrites.includes('float32_io'), 'float32 models need no boundary casts')
  }
})

t.test('external data: model.onnx holds the graph, model.onnx_data the weights; same ids', async (t) => {
  const dir = await generatedModel('llama', 'tiny', { externalData: true })
  t.ok(statSync(join(dir, 'model.onnx_data')).size > 10 * statSync(join(dir, 'model.onnx')).size, 'the weights are outside')
  const served = await serveAndCompare(t, 'llama', { externalData: true })
  checkServed(t, served, 'external data')
  t.same(served.alone, plain.llama!.alone, 'the plain model’s ids')
})

t.test("optimum 1.x's merged decoder runs both branches of use_cache_branch; same ids", async (t) => {
  const dir = await generatedModel('llama', 'tiny', { merged: true })
  t.notOk(existsSync(join(dir, 'model.onnx')))
  const graph = (await readModelProto(join(dir, 'decoder_model_merged.onnx'))).graph!
  const branchNode = graph.node.find((n) => n.opType === 'If')
  t.same(branchNode?.input, ['use_cache_branch'])
  t.same(branchNode?.attribute.map((a) => a.name).sort(), ['else_branch', 'then_branch'])
  const served = await serveAndCompare(t, 'llama', { merged: true })
  checkServed(t, served, 'merged')
  t.same(served.alone, plain.llama!.alone, 'the plain model’s ids')
})

t.test('float16 weights, key/values and logits: onnxruntime’s own float16 ids', async (t) => {
  for (const arch of ['llama', 'gpt2'] as const) {
    const dir = await generatedModel(arch, 'tiny', { dtype: 'float16' })
    const graph = (await readModelProto(join(dir, 'model.onnx'))).graph!
    const elemType = (name: string) => {
      const v = [...graph.input, ...graph.output].find((x) => x.name === name)
      return v?.type?.value.case === 'tensorType' ? v.type.value.value.elemType : undefined
    }
    t.equal(elemType('past_key_values.0.key'), TensorProto_DataType.FLOAT16)
    t.equal(elemType('logits'), TensorProto_DataType.FLOAT16)
    const served = await serveAndCompare(t, arch, { dtype: 'float16' })
    checkServed(t, served, `${arch} float16`)
    t.ok(served.rewrites.includes('float32_io'), 'float32 at the boundary')
  }
})

t.test('float16, external data and merged at once', async (t) => {
  const layout: ModelLayout = { dtype: 'float16', externalData: true, merged: true }
  const dir = await generatedModel('gpt2', 'tiny', layout)
  t.ok(existsSync(join(dir, 'decoder_model_merged.onnx_data')))
  checkServed(t, await serveAndCompare(t, 'gpt2', layout), 'float16 + external data + merged')
})
