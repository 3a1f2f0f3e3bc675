/**
 * What config.json says differently per model family, beyond field names:
 * how many key/value heads a family really has, how long a sequence an ALiBi
 * model may run, and where PEFT itself cannot build a prefix-tuning adapter.
 * Everything here is read from config.json only; the ONNX graph's own shapes
 * are checked against it at load (onnx-signature.ts).
 */
type Json = Record<string, unknown>

/**
 * ALiBi models (BLOOM, MPT) learn no position table, so config.json sets no
 * limit. prefixd caps them at this many positions (prefix included) unless
 * config.json names a training length: BLOOM was trained on 2048 tokens, and
 * the cap bounds the memory one request may claim. Documented in the README.
 */
export const ALIBI_DEFAULT_MAX_POSITIONS = 2048

function num(cfg: Json, name: string): number | undefined {
  const v = cfg[name]
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined
}

/** Whether the family biases attention by distance (ALiBi) instead of embedding positions. */
export function usesAlibi(cfg: Json): boolean {
  if (cfg.model_type === 'bloom') return true
  if (cfg.model_type === 'falcon' && cfg.alibi === true) return true
  // transformers' MPT always builds an ALiBi bias, whatever attn_config says.
  return cfg.model_type === 'mpt'
}

/**
 * Key/value heads where config.json states them indirectly. Falcon's classic
 * architecture with `multi_query: true` has exactly one key/value head (its
 * `num_kv_heads` field is then ignored by transformers); the new decoder
 * architecture uses `num_kv_heads`.
 */
export function familyKvHeads(cfg: Json): number | undefined {
  if (cfg.model_type === 'falcon') {
    if (cfg.new_decoder_architecture === true) return num(cfg, 'num_kv_heads')
    if (cfg.multi_query === true) return 1
    return num(cfg, 'num_attention_heads')
  }
  if (cfg.multi_query === true) return 1
  // MPT keeps its attention settings in a nested object.
  const attn = cfg.attn_config
  if (typeof attn === 'object' && attn !== null) return num(attn as Json, 'kv_n_heads')
  return undefined
}

/**
 * Head size of keys and of values where they differ from hidden/heads:
 * DeepSeek-style multi-head latent attention stores keys of
 * qk_nope_head_dim + qk_rope_head_dim and values of v_head_dim.
 */
export function familyHeadDims(cfg: Json): { key: number; value: number } | undefined {
  const nope = num(cfg, 'qk_nope_head_dim')
  const rope = num(cfg, 'qk_rope_head_dim')
  const value = num(cfg, 'v_head_dim')
  if (nope === undefined || rope === undefined || value === undefined) return undefined
  return { key: nope + rope, value }
}

/** Longest sequence for families whose config.json states none (ALiBi). */
export function familyMaxPositions(cfg: Json): number | undefined {
  if (!usesAlibi(cfg)) return undefined
  return num(cfg, 'seq_length') ?? ALIBI_DEFAULT_MAX_POSITIONS
}

/**
 * Why PEFT cannot build a prefix-tuning adapter for this model, or null when
 * it can. PEFT shapes a prefix as [layers, 2, num_attention_heads, P, head]
 * from the config's attention heads; these families' attention layers then
 * reject it (measured with peft 0.21 on transformers 4.57), so no trained
 * prefix can exist and prefixd serves the base model only.
 */
export function prefixRefusal(cfg: Json): string | null {
  const type = cfg.model_type
  if (type === 'falcon' && cfg.new_decoder_architecture !== true && cfg.multi_query === true) {
    return 'falcon with multi_query keeps one key/value head, and PEFT builds prefixes with one per attention head, which its attention rejects'
  }
  if (type === 'mpt') {
    return "MPT's attention takes its cache in a layout PEFT's prefix tuning does not produce"
  }
  if (familyHeadDims(cfg) !== undefined) {
    return `${String(type)} uses multi-head latent attention (keys and values of different sizes), which PEFT's prefix tuning cannot shape`
  }
  return null
}
