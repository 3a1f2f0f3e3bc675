/**
 * Reading real PEFT adapters, float16/bfloat16 decoding, the native format,
 * the safetensors writer, shape checks against a model, and prefix folders —
 * the paths where a correct file must come out right. Malformed input lives in
 * malformed.test.ts.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { ModelSpec } from '../../src/domain/model-spec.js'
import { PrefixShapeMismatchError } from '../../src/errors.js'
import { decodeFloatTensor, floatToHalfBits as productHalfBits, halfToFloat } from '../../src/prefixes/dtype-convert.js'
import { readNativePrefix, writeNativePrefix } from '../../src/prefixes/native-format.js'
import { parsePeftConfig, readPeftAdapter } from '../../src/prefixes/peft-adapter.js'
import { isValidPrefixId } from '../../src/domain/prefix-id.js'
import { loadPrefixFolder } from '../../src/prefixes/prefix-folder.js'
import type { PrefixKV } from '../../src/domain/prefix-kv.js'
import { parseSafetensors, serializeSafetensors } from '../../src/prefixes/safetensors.js'
import { assertPrefixFitsModel, assertVirtualTokensFit, prefixShapeMismatches } from '../../src/prefixes/shape-check.js'
import { storiesPrefixesDir } from '../helpers/shared-data.js'
import { buildNativeFile, buildPeftAdapter, encodeFloats, floatToBF16Bits, floatToHalfBits } from '../helpers/prefix-fixtures.js'

const folder = (id: string) => join(storiesPrefixesDir, id)
const readShared = (id: string, file: string) => readFileSync(join(storiesPrefixesDir, id, file))

/** stories260K: 5 layers, 8 query heads, 4 key/value heads of size 8 (from its README). */
const stories260K: ModelSpec = {
  modelType: 'llama',
  numLayers: 5,
  numAttentionHeads: 8,
  numKvHeads: 4,
  headDim: 8,
  hiddenSize: 64,
  vocabSize: 512,
  maxPositions: 512,
  bosTokenId: 1,
  eosTokenIds: [2],
  padTokenId: null,
  valueHeadDim: 8,
  prefixRefusal: null,
  quantization: null,
  batchInvariant: true,
  graphRewrites: [],
}

/** prompt_embeddings read by hand, sharing no code with src/: header JSON, offsets, DataView. */
function rawPromptEmbeddings(bytes: Buffer): { shape: number[]; values: Float32Array } {
  const headerLength = Number(bytes.readBigUInt64LE(0))
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'))
  const entry = header.prompt_embeddings
  const [begin, end] = entry.data_offsets
  const view = new DataView(bytes.buffer, bytes.byteOffset + 8 + headerLength + begin, end - begin)
  const values = new Float32Array((end - begin) / 4)
  for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(i * 4, true)
  return { shape: entry.shape, values }
}

for (const [id, P] of [['dog-max', 8], ['robot-benny', 16]] as const) {
  t.test(`real PEFT adapter ${id}`, async (t) => {
    const weights = readShared(id, 'adapter_model.safetensors')
    const { prefix, config, dtype } = readPeftAdapter(readShared(id, 'adapter_config.json').toString('utf8'), weights)
    t.equal(dtype, 'F32')
    t.match(prefix, { numVirtualTokens: P, numLayers: 5, numKvHeads: 4, headDim: 8 })
    t.match(config, { numVirtualTokens: P, numLayers: 5, numKvHeads: 4, tokenDim: 32, headDim: 8 })
    t.equal(prefix.keys.length, 5)
    t.equal(prefix.values.length, 5)

    const raw = rawPromptEmbeddings(weights)
    t.same(raw.shape, [P, 5 * 2 * 32])
    const H = 4
    const D = 8
    const width = raw.shape[1]
    let mismatches = 0
    let checked = 0
    for (let i = 0; i < 5; i++) {
      t.equal(prefix.keys[i].length, H * P * D, `layer ${i} key is [H, P, D]`)
      for (let h = 0; h < H; h++) {
        for (let tok = 0; tok < P; tok++) {
          for (let d = 0; d < D; d++) {
            const at = (h * P + tok) * D + d
            if (prefix.keys[i][at] !== raw.values[tok * width + (2 * i * H + h) * D + d]) mismatches++
            if (prefix.values[i][at] !== raw.values[tok * width + ((2 * i + 1) * H + h) * D + d]) mismatches++
            checked += 2
          }
        }
      }
    }
    t.equal(checked, 2 * 5 * H * P * D)
    t.equal(mismatches, 0, 'keys[i][h, t, d] = row t, column ((2i)H + h)D + d; values at 2i + 1')
    // Keys and values of one layer are different data, so a swapped split would have been caught.
    t.not(prefix.keys[0][0], prefix.values[0][0])
    assertPrefixFitsModel(prefix, stories260K, id)
    assertPrefixFitsModel(config, stories260K, id)

    const loaded = await loadPrefixFolder(folder(id), { maxFileBytes: 1 << 20 })
    t.equal(loaded.format, 'peft')
    t.equal(loaded.dtype, 'F32')
    t.same(loaded.contribution, { kind: 'past_kv', prefix }, 'the folder loader reads the same prefix')
  })
}

t.test('F16 and BF16 adapters decode within the format precision', async (t) => {
  const raw = rawPromptEmbeddings(readShared('dog-max', 'adapter_model.safetensors')).values
  const reference = readPeftAdapter(readShared('dog-max', 'adapter_config.json').toString('utf8'), readShared('dog-max', 'adapter_model.safetensors')).prefix
  // F16 keeps 11 significant bits (relative error ≤ 2^-11, absolute 2^-25 among subnormals); BF16 keeps 8.
  const tolerance = { F16: (x: number) => Math.max(Math.abs(x) * 2 ** -11, 2 ** -25), BF16: (x: number) => Math.abs(x) * 2 ** -8 }
  for (const dtype of ['F16', 'BF16'] as const) {
    const fixture = buildPeftAdapter({ layers: 5, kvHeads: 4, headDim: 8, P: 8, dtype, embeddings: raw })
    const { prefix, dtype: stored } = readPeftAdapter(fixture.configJson, fixture.safetensors)
    t.equal(stored, dtype)
    let worst = 0
    let exact = 0
    let total = 0
    for (let i = 0; i < 5; i++) {
      for (const [got, want] of [[prefix.keys[i], reference.keys[i]], [prefix.values[i], reference.values[i]]]) {
        for (let j = 0; j < want.length; j++) {
          worst = Math.max(worst, Math.abs(got[j] - want[j]) / tolerance[dtype](want[j]))
          if (got[j] === want[j]) exact++
          total++
        }
      }
    }
    t.ok(worst <= 1, `${dtype}: every value within precision (worst ${worst.toFixed(3)} of the bound)`)
    t.ok(exact < total / 2, `${dtype}: values really were rounded (${exact}/${total} exact)`)
  }

  // Bit patterns with known values, straight from the IEEE 754 / bfloat16 definitions.
  const half: Array<[number, number]> = [[0x3c00, 1], [0xc000, -2], [0x7bff, 65504], [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24], [0x0400, 2 ** -14], [0x3555, 0.333251953125]]
  for (const [bits, value] of half) {
    t.equal(halfToFloat(bits), value, `half 0x${bits.toString(16)}`)
    t.equal(floatToHalfBits(value), bits, `fixture encoder agrees on 0x${bits.toString(16)}`)
  }
  t.ok(Object.is(halfToFloat(0x8000), -0), 'half -0')
  // The product's encoder (float16 models) against the fixtures' own, on known bits and many seeded floats.
  for (const [bits, value] of half) t.equal(productHalfBits(value), bits, `product encoder on 0x${bits.toString(16)}`)
  const samples = Array.from({ length: 20000 }, (_, i) => (i % 2 ? -1 : 1) * 2 ** ((i % 60) - 30) * (1 + (i % 997) / 997))
  const disagree = samples.filter((x) => productHalfBits(Math.fround(x)) !== floatToHalfBits(Math.fround(x)))
  t.same(disagree, [], 'the two encoders agree across float16 range, subnormals and overflow')
  t.equal(productHalfBits(65520), 0x7c00, 'halfway past the largest half rounds to infinity')
  t.equal(productHalfBits(-0), 0x8000)
  const bf16 = Buffer.alloc(8)
  for (const [i, bits] of [0x3f80, 0xc040, 0x0001, 0x4049].entries()) bf16.writeUInt16LE(bits, 2 * i)
  t.same([...decodeFloatTensor(bf16, 'BF16', 'x')], [1, -3, 2 ** -133, 3.140625])
  t.equal(floatToBF16Bits(Math.PI), 0x4049)
  // A view at an odd byte offset (safetensors data need not be aligned) still decodes.
  const odd = Buffer.concat([Buffer.from([9]), encodeFloats([1.5, -2.25], 'F32')]).subarray(1)
  t.same([...decodeFloatTensor(odd, 'F32', 'x')], [1.5, -2.25])
})

t.test('native format: write → read round trip', async (t) => {
  const dogMax = readPeftAdapter(readShared('dog-max', 'adapter_config.json').toString('utf8'), readShared('dog-max', 'adapter_model.safetensors')).prefix
  const file = writeNativePrefix(dogMax, { modelFingerprint: 'sha256:abc123' })
  const back = readNativePrefix(file)
  t.equal(back.dtype, 'F32')
  t.same(back.metadata, { numVirtualTokens: 8, numLayers: 5, numKvHeads: 4, headDim: 8, modelFingerprint: 'sha256:abc123' })
  t.same(back.prefix, dogMax, 'exact for F32')
  t.ok(back.prefix.keys.every((k, i) => k !== dogMax.keys[i]), 'read returns fresh arrays')

  const parsed = parseSafetensors(file)
  t.same(parsed.metadata, {
    format: 'prefixd.prefix', format_version: '1', num_virtual_tokens: '8', num_layers: '5', num_kv_heads: '4', head_dim: '8', model_fingerprint: 'sha256:abc123',
  })
  t.same(parsed.tensors.get('prefix.keys'), { name: 'prefix.keys', dtype: 'F32', shape: [5, 4, 8, 8], begin: 0, end: 5 * 4 * 8 * 8 * 4 })
  t.notOk('model_fingerprint' in readNativePrefix(writeNativePrefix(dogMax)).metadata, 'fingerprint is optional')

  // A hand-built file ([L, H, P, D] stacks) reads back layer by layer, in every accepted dtype.
  const shape = { layers: 3, kvHeads: 2, headDim: 4, P: 5 }
  const perLayer = 2 * 5 * 4
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    const { file: handBuilt, keys, values } = buildNativeFile({ ...shape, dtype })
    const read = readNativePrefix(handBuilt)
    t.equal(read.dtype, dtype)
    const bound = dtype === 'F32' ? 0 : dtype === 'F16' ? 2 ** -11 : 2 ** -8
    let worst = 0
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < perLayer; j++) {
        worst = Math.max(worst, Math.abs(read.prefix.keys[i][j] - keys[i * perLayer + j]), Math.abs(read.prefix.values[i][j] - values[i * perLayer + j]))
      }
    }
    t.ok(worst <= bound, `${dtype}: layer slices match the stacked tensors (worst error ${worst})`)
  }
})

t.test('safetensors writer', async (t) => {
  // Re-serializing the real PEFT file's one tensor reproduces it byte for byte (padding included).
  const real = readShared('dog-max', 'adapter_model.safetensors')
  const parsed = parseSafetensors(real)
  const rewritten = serializeSafetensors({ prompt_embeddings: { dtype: 'F32', shape: [8, 320], data: parsed.bytesOf('prompt_embeddings') } }, { format: 'pt' })
  t.ok(rewritten.equals(real), 'identical to what the reference implementation wrote')

  const file = serializeSafetensors(
    {
      a: { dtype: 'U8', shape: [3], data: Uint8Array.from([1, 2, 3]) },
      b: { dtype: 'F64', shape: [2], data: encodeFloats([0.5, 7], 'F64') },
      c: { dtype: 'F32', shape: [1, 1], data: encodeFloats([4], 'F32') },
    },
    { note: 'hi' },
  )
  const headerLength = Number(file.readBigUInt64LE(0))
  t.equal(headerLength % 8, 0, 'data region starts 8-byte aligned')
  const headerText = file.subarray(8, 8 + headerLength).toString('utf8')
  t.match(headerText, /^\{.*\} *$/, 'padded with spaces')
  const back = parseSafetensors(file)
  t.same(back.metadata, { note: 'hi' })
  for (const [name, size] of [['a', 1], ['b', 8], ['c', 4]] as const) {
    t.equal(back.tensors.get(name)!.begin % size, 0, `${name} aligned to its element size`)
  }
  t.same([...back.bytesOf('a')], [1, 2, 3])
  t.same([...decodeFloatTensor(back.bytesOf('c'), 'F32', 'c')], [4])
  t.equal(back.bytesOf('b').length, 16)
  t.equal(parseSafetensors(serializeSafetensors({})).tensors.size, 0, 'an empty file is valid')
})

t.test('shape checks against a model', async (t) => {
  const shape = (numLayers: number, numKvHeads: number, headDim: number) => ({ numLayers, numKvHeads, headDim, numVirtualTokens: 4 })
  t.same(prefixShapeMismatches(shape(5, 4, 8), stories260K), [])
  t.throws(() => assertPrefixFitsModel(shape(3, 2, 16), stories260K, 'x'), {
    message: "prefix 'x' has 3 layers, the model has 5; 2 key/value heads, the model has 4; head size 16, the model has 8",
  })
  t.throws(() => assertPrefixFitsModel(shape(1, 4, 8), stories260K), { message: 'prefix has 1 layer, the model has 5' })
  // The grouped-query trap: an adapter recorded with the 8 query heads has the same token_dim (32)
  // but the wrong split, and must be refused rather than silently misread.
  const queryHeads = parsePeftConfig(buildPeftAdapter({ layers: 5, kvHeads: 8, headDim: 4, P: 2 }).config)
  const err = t.throws(() => assertPrefixFitsModel(queryHeads, stories260K, 'q'))
  t.ok(err instanceof PrefixShapeMismatchError)
  t.match(err, { message: "prefix 'q' has 8 key/value heads, the model has 4; head size 4, the model has 8", statusCode: 422 })

  assertVirtualTokensFit(8, { maxVirtualTokens: 64, maxPositions: 512 })
  t.throws(() => assertVirtualTokensFit(65, { maxVirtualTokens: 64, maxPositions: 512 }, 'long'), {
    message: "prefix 'long' has 65 virtual tokens, more than the limit of 64",
  })
  t.throws(() => assertVirtualTokensFit(512, { maxVirtualTokens: 1024, maxPositions: 512 }), /leaving no room in the model's 512 positions/)
})

t.test('native folder and prefix ids', async (t) => {
  const prefix: PrefixKV = readPeftAdapter(readShared('robot-benny', 'adapter_config.json').toString('utf8'), readShared('robot-benny', 'adapter_model.safetensors')).prefix
  const dir = t.testdir({ 'prefix.safetensors': writeNativePrefix(prefix, { modelFingerprint: 'fp' }), 'README.md': 'notes' })
  const loaded = await loadPrefixFolder(dir, { maxFileBytes: 1 << 20 })
  t.equal(loaded.format, 'native')
  t.equal(loaded.modelFingerprint, 'fp')
  t.same(loaded.contribution, { kind: 'past_kv', prefix })

  for (const id of ['dog-max', 'a', 'A.b_c-9', '...', 'x'.repeat(128)]) t.ok(isValidPrefixId(id), `valid: ${id}`)
  for (const id of ['', '.', '..', 'x'.repeat(129), 'a/b', '../x', 'a b', 'caf\u00e9', 'a\0', 5, undefined]) {
    t.notOk(isValidPrefixId(id), `invalid: ${JSON.stringify(id)}`)
  }
})
