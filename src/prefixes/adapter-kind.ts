/**
 * An adapter kind: one way of adapting the frozen model that prefixd serves
 * (prefix tuning, prompt tuning, P-tuning; later LoRA). A kind knows how to
 * read its files (PEFT's `save_pretrained` output and prefixd's own stored
 * file), whether the loaded model can serve an adapter of it, and what the
 * adapter contributes to a batch row; what that costs in memory follows from
 * the contribution (contributionBytes). Everything else — store, index, API,
 * CLI, quotas, metrics, tenants — is the same for every kind; the kinds are
 * listed in one table (kinds.ts).
 */
import type { ModelArchitecture, ModelSpec } from '../domain/model-spec.js'
import type { AdapterContribution, ContributionKind } from '../domain/adapter-contribution.js'
import type { SafetensorsFile } from './safetensors.js'

/** The `kind` of a stored record; `prefix` for records written before kinds existed. */
export type AdapterKindName = 'prefix' | 'prompt_tuning' | 'p_tuning'

/** What a kind checks an adapter against: the model's shape and the contributions its graph takes. */
export interface ServedModel {
  spec: ModelSpec
  accepts: ReadonlySet<ContributionKind>
}

export interface KindTensors {
  contribution: AdapterContribution
  /** The dtype the values came in (F32, F16, BF16); stored blobs are always F32. */
  dtype: string
  /** The kind of model PEFT trained it for, when its config says (task type). */
  architecture?: ModelArchitecture
}

/** The shape fields a record shows for an adapter; each kind fills the ones that describe it. */
export interface AdapterShapeFields {
  num_virtual_tokens: number
  num_layers?: number
  num_kv_heads?: number
  head_dim?: number
  hidden_size?: number
}

export interface AdapterKind {
  readonly name: AdapterKindName
  /** `peft_type` in adapter_config.json for this kind. */
  readonly peftType: string
  /** `format` in the `__metadata__` of this kind's stored (native) safetensors file. */
  readonly nativeFormat: string
  /** What its adapters contribute to a row; the loaded model must accept it. */
  readonly contributes: ContributionKind
  /** Reads PEFT's files: the parsed adapter_config.json and the weights file. Throws InvalidPrefixError. */
  readPeft(config: Record<string, unknown>, weights: SafetensorsFile): KindTensors
  /** Reads this kind's stored file (its metadata's format already matched). */
  readNative(file: SafetensorsFile): KindTensors & { modelFingerprint?: string }
  writeNative(contribution: AdapterContribution, modelFingerprint: string): Buffer
  /** Refuses, naming every mismatch, an adapter this model cannot serve (PrefixShapeMismatchError). */
  assertServable(contribution: AdapterContribution, model: ServedModel, id: string): void
  shapeFields(contribution: AdapterContribution): AdapterShapeFields
}
