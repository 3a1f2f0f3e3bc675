/**
 * Prompt tuning and P-tuning (PEFT PROMPT_TUNING, P_TUNING): P vectors in
 * input-embedding space that become virtual tokens before BOS. The two types
 * differ only in training; PEFT saves both as the same tensor, so one
 * definition serves both and only their names differ (records say which).
 */
import { PrefixShapeMismatchError } from '../errors.js'
import type { AdapterContribution, VirtualEmbeddings } from '../domain/adapter-contribution.js'
import { readNativePromptEmbeddings, readPeftPromptEmbeddings, writeNativePromptEmbeddings } from './prompt-embeddings.js'
import type { AdapterKind, AdapterKindName } from './adapter-kind.js'

function embedsOf(c: AdapterContribution): VirtualEmbeddings {
  if (c.kind !== 'input_embeds') throw new TypeError(`a prompt-learning adapter contributes input_embeds, not ${c.kind}`)
  return c.embeds
}

function promptLearningKind(name: AdapterKindName, peftType: string): AdapterKind {
  const nativeFormat = `prefixd.${name}`
  return {
    name,
    peftType,
    nativeFormat,
    contributes: 'input_embeds',

    readPeft(config, weights) {
      const { embeds, dtype } = readPeftPromptEmbeddings(config, weights)
      return { contribution: { kind: 'input_embeds', embeds }, dtype }
    },

    readNative(file) {
      const { embeds, ...rest } = readNativePromptEmbeddings(file, nativeFormat)
      return { contribution: { kind: 'input_embeds', embeds }, ...rest }
    },

    writeNative(c, modelFingerprint) {
      return writeNativePromptEmbeddings(embedsOf(c), nativeFormat, modelFingerprint)
    },

    assertServable(c, model, id) {
      const embeds = embedsOf(c)
      if (!model.accepts.has('input_embeds')) {
        throw new PrefixShapeMismatchError(
          `adapter '${id}' is ${peftType}, which needs input embeddings; this server's model graph has no token-embedding lookup prefixd can bypass`,
        )
      }
      if (embeds.hiddenSize !== model.spec.hiddenSize) {
        throw new PrefixShapeMismatchError(`adapter '${id}' has hidden size ${embeds.hiddenSize} (token_dim), the model has ${model.spec.hiddenSize}`)
      }
    },

    shapeFields(c) {
      const e = embedsOf(c)
      return { num_virtual_tokens: e.numVirtualTokens, hidden_size: e.hiddenSize }
    },
  }
}

export const promptTuningKind = promptLearningKind('prompt_tuning', 'PROMPT_TUNING')
export const pTuningKind = promptLearningKind('p_tuning', 'P_TUNING')
