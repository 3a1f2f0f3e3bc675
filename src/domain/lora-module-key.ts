/**
 * One name for a projection that both sides of a LoRA agree on. PEFT saves
 * `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`; an
 * optimum export names the same Linear `/model/layers.0/self_attn/q_proj/MatMul`
 * (or `/model/model/...` when exported through a wrapper, or with the weight
 * initializer `transformer.h.0.attn.c_attn.weight` for GPT-2). Their common
 * part starts at the layer list: `layers.0.self_attn.q_proj`, `h.0.attn.c_attn`.
 * Keeping the parent (`attn.c_proj` vs `mlp.c_proj`) matters: GPT-2 has two
 * `c_proj` per layer.
 */

/**
 * The module key of a dotted module path: from the segment before the first
 * all-digit segment (the layer list and index) to the end. Null when the path
 * has no layer index, i.e. the module is not inside a numbered layer
 * (lm_head, embeddings), which LoRA rows never target here.
 */
export function moduleKeyOf(dottedPath: string): string | null {
  const parts = dottedPath.split('.').filter((p) => p.length > 0)
  const index = parts.findIndex((p, i) => i > 0 && /^\d+$/.test(p))
  if (index < 1 || index === parts.length - 1) return null
  return parts.slice(index - 1).join('.')
}

/** The layer index inside a module key (`layers.3.mlp.up_proj` → 3). */
export function layerOfKey(key: string): number {
  return Number(key.split('.')[1])
}

/** The leaf module name PEFT's `target_modules` lists (`layers.3.mlp.up_proj` → `up_proj`). */
export function leafOfKey(key: string): string {
  return key.slice(key.lastIndexOf('.') + 1)
}
