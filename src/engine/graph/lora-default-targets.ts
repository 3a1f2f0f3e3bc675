/**
 * Which projections take per-row LoRA inputs when LORA_TARGET_MODULES is
 * `peft` (the default): the modules PEFT's LoraConfig targets when none are
 * named, per config.json model_type (peft/utils/constants.py,
 * TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING), so the adapters most
 * people train are served. Each targetable projection costs every forward
 * pass a few small operations even with no LoRA row (bench/RESULTS.md): on
 * the 15m Llama, base rows on the q,v graph ran within noise of the exported
 * graph, on the all-projections graph at 0.92-0.97 of it. A model type PEFT
 * has no default for gets every projection.
 */
const PEFT_DEFAULT_LORA_TARGETS: Readonly<Record<string, readonly string[]>> = {
  llama: ['q_proj', 'v_proj'],
  mistral: ['q_proj', 'v_proj'],
  mixtral: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
  gemma: ['q_proj', 'v_proj'],
  gemma2: ['q_proj', 'v_proj'],
  stablelm: ['q_proj', 'v_proj'],
  opt: ['q_proj', 'v_proj'],
  gptj: ['q_proj', 'v_proj'],
  gpt_neo: ['q_proj', 'v_proj'],
  phi: ['q_proj', 'v_proj', 'fc1', 'fc2'],
  gpt2: ['c_attn'],
  gpt_bigcode: ['c_attn'],
  gpt_neox: ['query_key_value'],
  bloom: ['query_key_value'],
  falcon: ['query_key_value'],
  mpt: ['Wqkv'],
}

/** PEFT's default target modules for this model type, or null when it has none. */
export function peftDefaultLoraTargets(modelType: string): readonly string[] | null {
  return Object.hasOwn(PEFT_DEFAULT_LORA_TARGETS, modelType) ? PEFT_DEFAULT_LORA_TARGETS[modelType] : null
}
