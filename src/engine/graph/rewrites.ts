/**
 * Every graph rewrite prefixd may apply at load, in the order they run.
 * Add a rewrite here (one line) when a new adapter kind or model family needs
 * an input the exported graph does not take.
 */
import type { GraphRewrite } from './graph-rewrite.js'
import { inputsEmbedsRewrite } from './inputs-embeds-rewrite.js'
import { kvStepOutputs } from './kv-step-outputs.js'

export const MODEL_REWRITES: readonly GraphRewrite[] = [inputsEmbedsRewrite, kvStepOutputs]
