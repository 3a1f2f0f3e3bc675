/**
 * Prefix tuning (PEFT PREFIX_TUNING): per-layer keys and values that sit in a
 * row's past ahead of its tokens. Its readers and writer are the prefix
 * formats of this folder (peft-adapter.ts, native-format.ts).
 */
import { assertValidPrefixKV, NATIVE_FORMAT, readNativePrefixFile, writeNativePrefix } from './native-format.js'
import { parsePeftConfig, readPeftPrefixFile } from './peft-adapter.js'
import type { PrefixKV } from '../domain/prefix-kv.js'
import { assertPrefixFitsModel } from './shape-check.js'
import type { AdapterContribution } from '../domain/adapter-contribution.js'
import type { AdapterKind } from './adapter-kind.js'

function pastOf(c: AdapterContribution): PrefixKV {
  if (c.kind !== 'past_kv') throw new TypeError(`a prefix adapter contributes past_kv, not ${c.kind}`)
  return c.prefix
}

export const prefixKind: AdapterKind = {
  name: 'prefix',
  peftType: 'PREFIX_TUNING',
  nativeFormat: NATIVE_FORMAT,
  contributes: 'past_kv',

  readPeft(config, weights) {
    const cfg = parsePeftConfig(config)
    const { prefix, dtype } = readPeftPrefixFile(cfg, weights)
    // SEQ_2_SEQ_LM prefixes are the same kind with PEFT's encoder-decoder layer mapping (seq2seq-layer-mapping.ts).
    return { contribution: { kind: 'past_kv', prefix }, dtype, architecture: cfg.architecture }
  },

  readNative(file) {
    const { prefix, dtype, metadata } = readNativePrefixFile(file)
    const out = { contribution: { kind: 'past_kv' as const, prefix }, dtype }
    return metadata.modelFingerprint === undefined ? out : { ...out, modelFingerprint: metadata.modelFingerprint }
  },

  writeNative(c, modelFingerprint) {
    return writeNativePrefix(pastOf(c), { modelFingerprint })
  },

  assertServable(c, model, id) {
    const prefix = pastOf(c)
    assertValidPrefixKV(prefix)
    assertPrefixFitsModel(prefix, model.spec, id)
  },

  shapeFields(c) {
    const p = pastOf(c)
    return { num_virtual_tokens: p.numVirtualTokens, num_layers: p.numLayers, num_kv_heads: p.numKvHeads, head_dim: p.headDim }
  },
}
