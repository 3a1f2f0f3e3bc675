/**
 * The model's ONNX interface, discovered from the session's metadata: which
 * optional inputs exist and the names of every past/present tensor, checked
 * against config.json so that a folder whose files disagree is refused at load
 * instead of failing on the first request.
 */
import { ModelLoadError } from './model-load-error.js'
import type { ContributionKind } from '../domain/adapter-contribution.js'
import { INPUTS_EMBEDS } from './graph/inputs-embeds-rewrite.js'
import { GREEDY_LOGPROB, GREEDY_LOGPROB_WANTED, GREEDY_TOKEN } from './graph/greedy-pick.js'
import { LOGITS_TO_KEEP } from './graph/logits-to-keep.js'
import type { ModelSpec } from '../domain/model-spec.js'
import type { TensorMeta } from './session/tensor-meta.js'

export interface OnnxSignature {
  hasPositionIds: boolean
  /** Merged decoders (decoder_model_merged.onnx) take a boolean `use_cache_branch`. */
  hasUseCacheBranch: boolean
  /**
   * The derived `inputs_embeds` input (graph/inputs-embeds-rewrite.ts), when
   * the model has one: virtual tokens of prompt-learning adapters enter here.
   */
  inputsEmbeds: { name: string; hiddenSize: number } | null
  /** pastKeys[i] / pastValues[i]: input names of layer i. */
  pastKeys: string[]
  pastValues: string[]
  /** Output names of layer i's keys/values: the whole present (past + new), or only the new columns when `presentIsStep`. */
  presentKeys: string[]
  presentValues: string[]
  /** The graph returns only the columns a pass computed (graph/kv-step-outputs.ts), not past + new. */
  presentIsStep: boolean
  logits: string
  /** The graph slices its logits to the last `logits_to_keep` positions of a pass (graph/logits-to-keep.ts). */
  hasLogitsToKeep: boolean
  /**
   * The graph's own greedy pick per position and its raw logprob
   * (graph/greedy-pick.ts), when it has them; `wanted` names the input that
   * turns the logprob off for a pass (null: it is always computed).
   */
  greedyPick: { token: string; logprob: string; wanted: string | null } | null
  /**
   * Decode passes may bind the whole present in place (graph/present-in-place.ts
   * applied, and a session that binds outputs): set by loadModel.
   */
  presentInPlace?: boolean
  /** Head size of values as the graph states it (a number), when it does. */
  valueHeadDim?: number
}

export type { TensorMeta }

const PAST = /^past_key_values\.(\d+)\.(key|value)$/
const PRESENT = /^present\.(\d+)\.(key|value)$/
const PRESENT_STEP = /^present_step\.(\d+)\.(key|value)$/

function byLayer(names: readonly string[], pattern: RegExp, what: string, layers: number): [string[], string[]] {
  const keys: string[] = []
  const values: string[] = []
  for (const n of names) {
    const m = pattern.exec(n)
    if (!m) continue
    const i = Number(m[1])
    ;(m[2] === 'key' ? keys : values)[i] = n
  }
  for (let i = 0; i < layers; i++) {
    if (!keys[i] || !values[i]) throw new ModelLoadError(`model.onnx lacks ${what} for layer ${i}`)
  }
  if (keys.length !== layers || values.length !== layers) {
    throw new ModelLoadError(`model.onnx has ${what} for ${Math.max(keys.length, values.length)} layers, config.json says ${layers}`)
  }
  return [keys, values]
}

/** Checks a numeric dim of a past input against config.json (symbolic dims pass). */
function checkDim(meta: TensorMeta | undefined, axis: number, expected: number, what: string): void {
  const d = meta?.shape?.[axis]
  if (typeof d === 'number' && d > 0 && d !== expected) {
    throw new ModelLoadError(`model.onnx ${meta!.name} has ${what} ${d}, config.json implies ${expected}`)
  }
}

export function readSignature(
  inputs: readonly TensorMeta[],
  outputs: readonly TensorMeta[],
  spec: ModelSpec,
): OnnxSignature {
  const inputNames = inputs.map((i) => i.name)
  const outputNames = outputs.map((o) => o.name)
  for (const needed of ['input_ids', 'attention_mask']) {
    if (!inputNames.includes(needed)) throw new ModelLoadError(`model.onnx has no '${needed}' input`)
  }
  if (!outputNames.includes('logits')) throw new ModelLoadError("model.onnx has no 'logits' output")
  const [pastKeys, pastValues] = byLayer(inputNames, PAST, 'past_key_values inputs', spec.numLayers)
  const presentIsStep = outputNames.some((n) => PRESENT_STEP.test(n))
  const [presentKeys, presentValues] = presentIsStep
    ? byLayer(outputNames, PRESENT_STEP, 'present_step outputs', spec.numLayers)
    : byLayer(outputNames, PRESENT, 'present outputs', spec.numLayers)
  // The graph's own shapes are the truth; config.json must agree with them.
  const firstKey = inputs.find((i) => i.name === pastKeys[0])
  const firstValue = inputs.find((i) => i.name === pastValues[0])
  checkDim(firstKey, 1, spec.numKvHeads, 'key/value heads')
  checkDim(firstKey, 3, spec.headDim, 'head size')
  // config.json states a separate value size only for latent attention (v_head_dim): check it
  // there; elsewhere it cannot tell, and the graph's own value shape is taken as it is.
  if (spec.valueHeadDim !== spec.headDim) checkDim(firstValue, 3, spec.valueHeadDim, 'value head size')
  const valueDim = firstValue?.shape?.[3]
  return {
    hasPositionIds: inputNames.includes('position_ids'),
    hasUseCacheBranch: inputNames.includes('use_cache_branch'),
    inputsEmbeds: inputNames.includes(INPUTS_EMBEDS) ? { name: INPUTS_EMBEDS, hiddenSize: spec.hiddenSize } : null,
    pastKeys,
    pastValues,
    presentKeys,
    presentValues,
    presentIsStep,
    logits: 'logits',
    hasLogitsToKeep: inputNames.includes(LOGITS_TO_KEEP),
    greedyPick:
      outputNames.includes(GREEDY_TOKEN) && outputNames.includes(GREEDY_LOGPROB)
        ? { token: GREEDY_TOKEN, logprob: GREEDY_LOGPROB, wanted: inputNames.includes(GREEDY_LOGPROB_WANTED) ? GREEDY_LOGPROB_WANTED : null }
        : null,
    ...(typeof valueDim === 'number' && valueDim > 0 ? { valueHeadDim: valueDim } : {}),
  }
}

/** The adapter contributions this graph can take: past key/values always, input embeddings when derived. */
export function acceptedContributions(sig: OnnxSignature): ContributionKind[] {
  return sig.inputsEmbeds === null ? ['past_kv'] : ['past_kv', 'input_embeds']
}
