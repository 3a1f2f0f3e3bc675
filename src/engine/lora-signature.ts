/**
 * The LoRA inputs of the loaded model, read from the session's metadata like
 * the rest of its signature: the pairs graph/lora-rewrite.ts added, one per
 * targetable projection, with the projection's size from their fixed dims.
 * A model without them (the rewrite found nothing to target) serves no LoRA.
 */
import { ModelLoadError } from './model-load-error.js'
import type { LoraInput } from './batch/lora-feed.js'
import { LORA_INPUT, loraInputA, loraInputB } from './graph/lora-rewrite.js'
import type { TensorMeta } from './onnx-signature.js'

function fixedDim(meta: TensorMeta | undefined, axis: number): number {
  const d = meta?.shape?.[axis]
  if (typeof d !== 'number' || d <= 0) throw new ModelLoadError(`LoRA input ${meta?.name} has no fixed size on axis ${axis}`)
  return d
}

export function readLoraInputs(inputs: readonly TensorMeta[]): LoraInput[] {
  const byName = new Map(inputs.map((i) => [i.name, i]))
  const keys = inputs.flatMap((i) => {
    const m = LORA_INPUT.exec(i.name)
    return m && m[2] === 'A' ? [m[1]] : []
  })
  return keys.map((key) => {
    const [a, b] = [loraInputA(key), loraInputB(key)]
    if (!byName.has(b)) throw new ModelLoadError(`the model has LoRA input ${a} but not ${b}`)
    return { key, a, b, inFeatures: fixedDim(byName.get(a), 1), outFeatures: fixedDim(byName.get(b), 2) }
  })
}
