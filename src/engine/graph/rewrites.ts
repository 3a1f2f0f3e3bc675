/**
 * Every graph rewrite prefixd may apply at load, in the order they run.
 * Add a rewrite here (one line) when a new adapter kind or model family needs
 * an input the exported graph does not take.
 */
import type { GraphRewrite } from './graph-rewrite.js'
import { float32Io } from './float32-io.js'
import { inputsEmbedsRewrite } from './inputs-embeds-rewrite.js'
import { loraRewrite } from './lora-rewrite.js'
import { kvStepOutputs } from './kv-step-outputs.js'
import { greedyPick } from './greedy-pick.js'
import { logitsToKeep } from './logits-to-keep.js'
import { positionIdsInput } from './position-ids-input.js'

// kv-step-outputs before float32_io (it finds present as its layer's Concat, and float32_io casts what it returns);
// float32_io puts float32 casts at the boundary of whatever the ones before it made;
// greedy_pick after it, so that it reads the float32 logits the engine would.
export const MODEL_REWRITES: readonly GraphRewrite[] = [
  positionIdsInput,
  inputsEmbedsRewrite,
  loraRewrite,
  kvStepOutputs,
  logitsToKeep,
  float32Io,
  greedyPick,
]
