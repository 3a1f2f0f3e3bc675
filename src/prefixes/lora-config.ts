/**
 * A PEFT LoRA adapter_config.json, validated for serving unmerged, per row.
 *
 * What is served is exactly PEFT's LoRA forward for a Linear in eval mode:
 * `y = x Wᵀ + s · (x Aᵀ) Bᵀ` with `s = lora_alpha / r` (or `lora_alpha / √r`
 * with `use_rslora`). Every option that changes that formula is refused by name
 * rather than silently ignored: serving it wrong would give a tenant a
 * different model than the one they trained, with no error anywhere.
 * Options that do not change it at inference are accepted: `lora_dropout`
 * (inactive in eval), `fan_in_fan_out` (it only says how a merge transposes the
 * delta; the unmerged forward is the same), `init_lora_weights`,
 * `layers_to_transform` / `layers_pattern` / `exclude_modules` (they decide
 * which modules have tensors, and the tensors are what is served).
 */
import type { LoraConfig } from '../domain/lora-weights.js'
import { InvalidPrefixError } from '../errors.js'

export const LORA_PEFT_TYPE = 'LORA'

export type { LoraConfig } from '../domain/lora-weights.js'

const FILE = 'adapter_config.json'

function invalid(message: string): never {
  throw new InvalidPrefixError(message)
}

const isEmpty = (v: unknown): boolean =>
  v === undefined || v === null || v === false || (Array.isArray(v) && v.length === 0) ||
  (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0)

/**
 * Options that change the forward pass, each with why it is refused. A value
 * counts as "off" when it is absent, null, false, [] or {}.
 */
const REFUSED_OPTIONS: ReadonlyArray<[field: string, why: string]> = [
  ['use_dora', 'DoRA (use_dora) rescales every output by a learned magnitude; only plain LoRA is served'],
  ['modules_to_save', 'modules_to_save replaces whole modules with trained copies; only low-rank updates are served'],
  ['lora_bias', 'lora_bias trains a bias on lora_B; only bias-free LoRA is served'],
  ['rank_pattern', 'rank_pattern (a rank per module) is not served; use one r for every module'],
  ['alpha_pattern', 'alpha_pattern (an alpha per module) is not served; use one lora_alpha for every module'],
  ['alora_invocation_tokens', 'activated LoRA (alora_invocation_tokens) applies only after invocation tokens; not served'],
  ['trainable_token_indices', 'trainable_token_indices changes token embeddings; not served'],
  ['layer_replication', 'layer_replication changes the model’s layers; not served'],
  ['target_parameters', 'target_parameters puts LoRA on raw parameters rather than Linear modules; not served'],
  ['use_qalora', 'QA-LoRA (use_qalora) is not served'],
  ['use_bdlora', 'block-diagonal LoRA (use_bdlora) is not served'],
  ['arrow_config', 'Arrow routing (arrow_config) is not served'],
]

function parseObject(config: Uint8Array | string | unknown): Record<string, unknown> {
  let raw: unknown = config
  if (config instanceof Uint8Array || typeof config === 'string') {
    try {
      raw = JSON.parse(typeof config === 'string' ? config : new TextDecoder('utf-8', { fatal: true }).decode(config))
    } catch {
      invalid(`${FILE} is not valid UTF-8 JSON`)
    }
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) invalid(`${FILE} must be a JSON object`)
  return raw as Record<string, unknown>
}

function targetModulesOf(obj: Record<string, unknown>): string[] | string {
  const t = obj.target_modules
  if (typeof t === 'string' && t.length > 0) return t
  if (Array.isArray(t) && t.length > 0 && t.every((m) => typeof m === 'string' && m.length > 0)) return t as string[]
  invalid(`${FILE}: "target_modules" is ${JSON.stringify(t)}; expected a non-empty list of module names`)
}

/** Validates a LoRA adapter_config.json (bytes, text or parsed object). */
export function parseLoraConfig(config: Uint8Array | string | unknown): LoraConfig {
  const obj = parseObject(config)
  const peftType = obj.peft_type
  if (typeof peftType !== 'string' || peftType.toUpperCase() !== LORA_PEFT_TYPE) {
    invalid(`the adapter is peft_type ${JSON.stringify(peftType ?? null)}, not "${LORA_PEFT_TYPE}"`)
  }
  const taskType = obj.task_type
  if (taskType !== undefined && taskType !== null && taskType !== 'CAUSAL_LM') {
    invalid(`${FILE}: task_type "${String(taskType)}" is not served; only CAUSAL_LM adapters are`)
  }
  const rank = obj.r
  if (typeof rank !== 'number' || !Number.isSafeInteger(rank) || rank <= 0) {
    invalid(`${FILE}: "r" is ${JSON.stringify(rank)}, not a positive integer`)
  }
  const alpha = obj.lora_alpha
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) {
    invalid(`${FILE}: "lora_alpha" is ${JSON.stringify(alpha)}, not a finite number`)
  }
  const bias = obj.bias ?? 'none'
  if (bias !== 'none') {
    invalid(`${FILE}: bias ${JSON.stringify(bias)} trains the base model's biases, which a LoRA row cannot carry; only bias "none" is served`)
  }
  for (const [field, why] of REFUSED_OPTIONS) {
    if (!isEmpty(obj[field])) invalid(`${FILE}: ${why} (${field} is ${JSON.stringify(obj[field])})`)
  }
  const rslora = obj.use_rslora ?? false
  if (typeof rslora !== 'boolean') invalid(`${FILE}: "use_rslora" is ${JSON.stringify(rslora)}, not a boolean`)
  // PEFT's LoraLayer.update_layer: scaling = lora_alpha / sqrt(r) with rsLoRA, else lora_alpha / r.
  const scaling = rslora ? alpha / Math.sqrt(rank) : alpha / rank
  return { rank, alpha, useRslora: rslora, scaling, targetModules: targetModulesOf(obj) }
}
