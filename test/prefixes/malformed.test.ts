/**
 * Every way a prefix file or folder can be wrong must surface as the right
 * error class with a message that names the problem — and, for arbitrary
 * bytes, as nothing but InvalidPrefixError / PayloadTooLargeError: a TypeError
 * or RangeError escaping here would be a 500 for a tenant's bad upload.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { InvalidPrefixError, PayloadTooLargeError, PrefixNotFoundError } from '../../src/errors.js'
import { decodeFloatTensor } from '../../src/prefixes/dtype-convert.js'
import { readNativePrefix, writeNativePrefix } from '../../src/prefixes/native-format.js'
import { looksLikePickle, parsePeftConfig, readPeftAdapter } from '../../src/prefixes/peft-adapter.js'
import { loadPrefixFolder } from '../../src/prefixes/prefix-folder.js'
import type { PrefixKV } from '../../src/domain/prefix-kv.js'
import { parseSafetensors } from '../../src/prefixes/safetensors.js'
import {
  PICKLE_BYTES,
  TORCH_ZIP_BYTES,
  buildNativeFile,
  buildPeftAdapter,
  buildSafetensors,
  corruptNativeFiles,
  corruptPeftAdapters,
  corruptSafetensors,
  encodeFloats,
  seededFloats,
} from '../helpers/prefix-fixtures.js'

type ErrorClass = typeof InvalidPrefixError | typeof PayloadTooLargeError | typeof PrefixNotFoundError

/** Runs `fn` (sync or async) and checks it fails with `cls` and a message matching `message`. */
async function expectError(t: Test, fn: () => unknown, cls: ErrorClass, message: RegExp, what: string): Promise<void> {
  try {
    await fn()
  } catch (err) {
    t.ok(err instanceof cls, `${what}: ${(err as Error)?.constructor?.name} ${(err as { code?: string }).code}`)
    t.match((err as Error).message, message, `${what}: message names the problem`)
    return
  }
  t.fail(`${what}: did not throw`)
}

const small = { layers: 2, kvHeads: 2, headDim: 4, P: 3 }

t.test('malformed safetensors containers', async (t) => {
  for (const c of corruptSafetensors()) {
    await expectError(t, () => parseSafetensors(c.bytes), InvalidPrefixError, c.message, c.name)
    // The same bytes as adapter weights or a native file fail the same way.
    await expectError(t, () => readPeftAdapter(buildPeftAdapter(small).configJson, c.bytes), InvalidPrefixError, c.message, `${c.name} (PEFT)`)
    await expectError(t, () => readNativePrefix(c.bytes), InvalidPrefixError, c.message, `${c.name} (native)`)
  }
  const valid = buildPeftAdapter(small).safetensors
  await expectError(t, () => parseSafetensors(valid, { maxHeaderBytes: 16 }), InvalidPrefixError, /exceeds the limit of 16 bytes/, 'configurable header limit')
  await expectError(t, () => parseSafetensors(valid).bytesOf('nope'), InvalidPrefixError, /no tensor named 'nope'/, 'unknown tensor name')
})

t.test('malformed PEFT adapters', async (t) => {
  for (const c of corruptPeftAdapters()) {
    await expectError(t, () => readPeftAdapter(c.configJson, c.safetensors), InvalidPrefixError, c.message, c.name)
  }
  // The config may also arrive already parsed; case of peft_type does not matter.
  const fixture = buildPeftAdapter({ ...small, config: { peft_type: 'prefix_tuning' } })
  t.equal(readPeftAdapter(fixture.config, fixture.safetensors).prefix.numVirtualTokens, 3)
  t.equal(readPeftAdapter(Buffer.from(fixture.configJson), fixture.safetensors).prefix.numVirtualTokens, 3, 'or as raw bytes')
  await expectError(t, () => parsePeftConfig(null), InvalidPrefixError, /must be a JSON object/, 'null config')
})

t.test('malformed native files and unwritable prefixes', async (t) => {
  for (const c of corruptNativeFiles()) {
    await expectError(t, () => readNativePrefix(c.bytes), InvalidPrefixError, c.message, c.name)
  }
  const good = (): PrefixKV => ({
    numVirtualTokens: 2, numLayers: 2, numKvHeads: 1, headDim: 2,
    keys: [seededFloats(4, 1), seededFloats(4, 2)], values: [seededFloats(4, 3), seededFloats(4, 4)],
  })
  t.ok(readNativePrefix(writeNativePrefix(good())).prefix, 'the baseline is writable')
  const broken: Array<[string, (p: PrefixKV) => void, RegExp]> = [
    ['missing layer', (p) => p.keys.pop(), /keys has 1 layers, expected 2/],
    ['short layer', (p) => { p.values[1] = new Float32Array(3) }, /values\[1\] must be a Float32Array of 4 values/],
    ['NaN', (p) => { p.keys[1][2] = NaN }, /keys\[1\] holds 1 NaN/],
    ['zero heads', (p) => { p.numKvHeads = 0 }, /numKvHeads is 0, not a positive integer/],
  ]
  for (const [name, breakIt, message] of broken) {
    const p = good()
    breakIt(p)
    await expectError(t, () => writeNativePrefix(p), InvalidPrefixError, message, `write: ${name}`)
  }
  const inf = Buffer.alloc(4)
  inf.writeUInt16LE(0x3c00, 0)
  inf.writeUInt16LE(0xfc00, 2)
  await expectError(t, () => decodeFloatTensor(inf, 'F16', 'x'), InvalidPrefixError, /x holds 1 NaN or infinite value \(first at flat index 1, -Infinity\)/, 'F16 -Infinity')
  await expectError(t, () => decodeFloatTensor(Buffer.alloc(3), 'F16', 'x'), InvalidPrefixError, /3 bytes is not a whole number of F16/, 'odd byte count')
})

t.test('pickle detection does not mistake a 640-byte safetensors header', async (t) => {
  // A header of exactly 640 bytes makes the file start 0x80 0x02, like a protocol-2 pickle.
  const fixture = buildPeftAdapter(small)
  const probe = buildSafetensors({ prompt_embeddings: { dtype: 'F32', shape: [3, 32], data: encodeFloats(fixture.embeddings, 'F32') } }, { format: 'pt', pad: '' })
  const pad = 'x'.repeat(640 - Number(probe.readBigUInt64LE(0)))
  const file = buildSafetensors({ prompt_embeddings: { dtype: 'F32', shape: [3, 32], data: encodeFloats(fixture.embeddings, 'F32') } }, { format: 'pt', pad })
  t.same([...file.subarray(0, 3)], [0x80, 0x02, 0x00])
  t.notOk(looksLikePickle(file))
  t.ok(looksLikePickle(PICKLE_BYTES) && looksLikePickle(TORCH_ZIP_BYTES))
  const dir = t.testdir({ 'adapter_config.json': fixture.configJson, 'adapter_model.safetensors': file })
  t.same((await loadPrefixFolder(dir, { maxFileBytes: 4096 })).contribution, { kind: 'past_kv', prefix: readPeftAdapter(fixture.configJson, fixture.safetensors).prefix })
})

t.test('prefix folders that must be refused', async (t) => {
  const peft = buildPeftAdapter(small)
  const native = buildNativeFile(small).file
  const opts = { maxFileBytes: 1 << 20 }
  const cases: Array<[string, Record<string, string | Buffer>, ErrorClass, RegExp]> = [
    ['both formats', { 'adapter_config.json': peft.configJson, 'adapter_model.safetensors': peft.safetensors, 'prefix.safetensors': native }, InvalidPrefixError, /ambiguous prefix folder/],
    ['native plus a stray config', { 'adapter_config.json': peft.configJson, 'prefix.safetensors': native }, InvalidPrefixError, /ambiguous/],
    ['config only', { 'adapter_config.json': peft.configJson }, InvalidPrefixError, /'adapter_config\.json' is there but 'adapter_model\.safetensors' is missing/],
    ['weights only', { 'adapter_model.safetensors': peft.safetensors }, InvalidPrefixError, /'adapter_config\.json' is missing/],
    ['empty folder', {}, InvalidPrefixError, /no prefix files: expected/],
    ['unrelated files', { 'README.md': '# adapter' }, InvalidPrefixError, /no prefix files/],
    ['adapter_model.bin', { 'adapter_config.json': peft.configJson, 'adapter_model.bin': PICKLE_BYTES }, InvalidPrefixError, /'adapter_model\.bin': pickle files are not accepted; save with safe_serialization=True/],
    ['a .pt file', { 'prefix.safetensors': native, 'prefix.pt': 'x' }, InvalidPrefixError, /'prefix\.pt': pickle files are not accepted/],
    ['a .pkl file', { 'weights.PKL': 'x' }, InvalidPrefixError, /'weights\.PKL': pickle files/],
    ['pickle renamed to safetensors', { 'adapter_config.json': peft.configJson, 'adapter_model.safetensors': PICKLE_BYTES }, InvalidPrefixError, /'adapter_model\.safetensors': pickle files are not accepted/],
    ['torch zip as native', { 'prefix.safetensors': TORCH_ZIP_BYTES }, InvalidPrefixError, /'prefix\.safetensors': pickle files/],
    ['oversized weights', { 'adapter_config.json': peft.configJson, 'adapter_model.safetensors': Buffer.concat([peft.safetensors, Buffer.alloc(2 << 20)]) }, PayloadTooLargeError, /'adapter_model\.safetensors' is \d+ bytes, over the limit of 1048576 bytes/],
    ['oversized config', { 'adapter_config.json': ' '.repeat((1 << 20) + 1), 'adapter_model.safetensors': peft.safetensors }, PayloadTooLargeError, /'adapter_config\.json' is 1048577 bytes/],
    ['config not UTF-8', { 'adapter_config.json': Buffer.from([0x7b, 0xff, 0x7d]), 'adapter_model.safetensors': peft.safetensors }, InvalidPrefixError, /not valid UTF-8/],
    ['bad native file', { 'prefix.safetensors': Buffer.from('garbage!garbage!') }, InvalidPrefixError, /invalid safetensors file/],
  ]
  for (const [name, files, cls, message] of cases) {
    const dir = t.testdir(files)
    await expectError(t, () => loadPrefixFolder(dir, opts), cls, message, name)
  }
  const root = t.testdir({ 'not-a-folder': 'x' })
  await expectError(t, () => loadPrefixFolder(join(root, 'gone'), opts), PrefixNotFoundError, /prefix 'gone' not found/, 'missing folder')
  await expectError(t, () => loadPrefixFolder(join(root, 'not-a-folder'), opts), InvalidPrefixError, /'not-a-folder' is not a prefix folder/, 'a file, not a folder')
  mkdirSync(join(root, 'dir-as-file', 'prefix.safetensors'), { recursive: true })
  await expectError(t, () => loadPrefixFolder(join(root, 'dir-as-file'), opts), InvalidPrefixError, /'prefix\.safetensors' is not a regular file/, 'directory named like the file')
})

/** Anything but our two error classes escaping is a bug. */
function onlyPrefixErrors(fn: () => unknown): void {
  try {
    fn()
  } catch (err) {
    if (err instanceof InvalidPrefixError || err instanceof PayloadTooLargeError) return
    throw err
  }
}

t.test('property: arbitrary and mutated bytes only ever raise prefix errors', async (t) => {
  const peft = buildPeftAdapter(small)
  const peftF16 = buildPeftAdapter({ ...small, dtype: 'F16' })
  const native = buildNativeFile(small).file
  const readAll = (bytes: Uint8Array) => {
    onlyPrefixErrors(() => parseSafetensors(bytes))
    onlyPrefixErrors(() => readPeftAdapter(peft.configJson, bytes))
    onlyPrefixErrors(() => readNativePrefix(bytes))
  }

  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), readAll), { numRuns: 500 })

  // Mutations of valid files, aimed mostly at the header where the parsing happens.
  const mutated = (base: Buffer) =>
    fc
      .record({
        edits: fc.array(fc.tuple(fc.nat({ max: Math.min(base.length - 1, 300) }), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        cut: fc.option(fc.nat({ max: base.length }), { nil: undefined }),
        extra: fc.uint8Array({ maxLength: 16 }),
      })
      .map(({ edits, cut, extra }) => {
        const copy = Buffer.from(base)
        for (const [at, byte] of edits) copy[at] = byte
        return Buffer.concat([copy.subarray(0, cut ?? copy.length), extra])
      })
  for (const base of [peft.safetensors, peftF16.safetensors, native]) {
    fc.assert(fc.property(mutated(base), readAll), { numRuns: 400 })
  }

  // Headers that are valid JSON but arbitrary in structure, over random data.
  const field = (typical: fc.Arbitrary<unknown>) => fc.oneof(typical, fc.anything())
  const entry = fc.record(
    {
      dtype: field(fc.constantFrom('F32', 'F16', 'BF16', 'F64', 'I8', 'BOOL', 'Q4')),
      shape: field(fc.array(fc.integer({ min: -1, max: 6 }), { maxLength: 4 })),
      data_offsets: field(fc.tuple(fc.nat(96), fc.nat(96))),
    },
    { requiredKeys: [] },
  )
  const header = fc.dictionary(fc.oneof(fc.constantFrom('prompt_embeddings', 'prefix.keys', 'prefix.values', '__metadata__', '__proto__'), fc.string()), fc.oneof(entry, fc.anything()), { maxKeys: 4 })
  fc.assert(
    fc.property(header, fc.uint8Array({ maxLength: 96 }), (h, data) => {
      const json = Buffer.from(JSON.stringify(h) ?? 'null')
      const len = Buffer.alloc(8)
      len.writeBigUInt64LE(BigInt(json.length))
      readAll(Buffer.concat([len, json, data]))
    }),
    { numRuns: 500 },
  )

  // Arbitrary adapter configs, parsed or as text.
  fc.assert(
    fc.property(fc.oneof(fc.anything(), fc.record({ peft_type: fc.constantFrom('PREFIX_TUNING', 'LORA'), num_virtual_tokens: fc.anything(), num_layers: fc.integer(), num_attention_heads: fc.integer(), token_dim: fc.integer() })), (config) => {
      onlyPrefixErrors(() => readPeftAdapter(config, peft.safetensors))
      onlyPrefixErrors(() => readPeftAdapter(JSON.stringify(config) ?? '', peft.safetensors))
    }),
    { numRuns: 300 },
  )
  t.pass('no TypeError or RangeError escaped')
})
