/**
 * LoRA (PEFT LORA): a low-rank update of chosen projections, applied to a
 * row's real tokens in every targeted projection (see
 * src/engine/graph/lora-rewrite.ts). Its readers and writer are the LoRA
 * formats of this folder (lora-config.ts, lora-adapter.ts, lora-native.ts).
 */
import { PrefixShapeMismatchError } from '../errors.js'
import { leafOfKey } from '../domain/lora-module-key.js'
import type { LoraAdapter } from '../domain/lora-weights.js'
import type { AdapterContribution } from '../domain/adapter-contribution.js'
import { checkLoraFitsModel, readLoraTensors } from './lora-adapter.js'
import { parseLoraConfig } from './lora-config.js'
import { LORA_NATIVE_FORMAT, readNativeLora, writeNativeLora } from './lora-native.js'
import type { AdapterKind } from './adapter-kind.js'

function loraOf(c: AdapterContribution): LoraAdapter {
  if (c.kind !== 'lora') throw new TypeError(`a LoRA adapter contributes lora, not ${c.kind}`)
  return c.lora
}

export const loraKind: AdapterKind = {
  name: 'lora',
  peftType: 'LORA',
  nativeFormat: LORA_NATIVE_FORMAT,
  contributes: 'lora',

  readPeft(config, weights) {
    const lora = readLoraTensors(parseLoraConfig(config), weights)
    return { contribution: { kind: 'lora', lora }, dtype: lora.dtype }
  },

  readNative(file) {
    const { adapter, modelFingerprint } = readNativeLora(file)
    const out = { contribution: { kind: 'lora' as const, lora: adapter }, dtype: 'F32' }
    return modelFingerprint === undefined ? out : { ...out, modelFingerprint }
  },

  writeNative(c, modelFingerprint) {
    return writeNativeLora(loraOf(c), { modelFingerprint })
  },

  assertServable(c, model, id) {
    if (!model.accepts.has('lora')) {
      throw new PrefixShapeMismatchError(
        `adapter '${id}' is LORA; this server serves no LoRA (LORA_TARGET_MODULES is none, or the model has no projection prefixd can target)`,
      )
    }
    checkLoraFitsModel(loraOf(c), model.loraProjections ?? [], id)
  },

  shapeFields(c) {
    const lora = loraOf(c)
    return { num_virtual_tokens: 0, rank: lora.rank, target_modules: [...new Set(lora.modules.map((m) => leafOfKey(m.key)))].sort() }
  },
}
