/**
 * A LoRA adapter as the engine multiplies it, shared vocabulary of the store
 * (which reads and checks PEFT's files into it, src/prefixes/lora-adapter.ts)
 * and the engine (which feeds it per row, src/engine/batch/lora-feed.ts).
 */

/** What a LoRA's adapter_config.json says, validated (src/prefixes/lora-config.ts). */
export interface LoraConfig {
  rank: number
  alpha: number
  useRslora: boolean
  /** The scale PEFT applies to B·A: alpha/r, or alpha/√r with rsLoRA. */
  scaling: number
  /** Leaf module names, or PEFT's regex string form (matched by PEFT against full names). */
  targetModules: string[] | string
}

export interface LoraModule {
  /** The module key shared with the graph (`layers.0.self_attn.q_proj`), see lora-module-key.ts. */
  key: string
  inFeatures: number
  outFeatures: number
  /** lora_Aᵀ, [inFeatures, rank] row-major. */
  a: Float32Array
  /** scaling · lora_Bᵀ, [rank, outFeatures] row-major. */
  b: Float32Array
}

export interface LoraAdapter {
  config: LoraConfig
  rank: number
  /** Sorted by key. */
  modules: LoraModule[]
  /** The dtype the tensors were stored in. */
  dtype: string
}

/** A projection of the loaded model that a LoRA may target: its key and size. */
export interface LoraProjection {
  key: string
  inFeatures: number
  outFeatures: number
}

/** Bytes one cached adapter holds (its A and B, float32). */
export function loraAdapterBytes(adapter: LoraAdapter): number {
  return adapter.modules.reduce((n, m) => n + (m.a.byteLength + m.b.byteLength), 0)
}
