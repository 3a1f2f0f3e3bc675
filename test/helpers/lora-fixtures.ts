/**
 * Seeded random LoRA adapters for a model's projections (tests and bench):
 * rank `rank` on the modules `target` picks, uniform values in ±scale, scaling
 * already folded in (it is 1 here), the layout readLoraAdapter produces.
 */
import { mulberry32 } from '../../src/models/generate/prng.js'
import type { LoraAdapter, LoraModule, LoraProjection } from '../../src/domain/lora-weights.js'
import { leafOfKey } from '../../src/domain/lora-module-key.js'

export function seededLora(
  projections: readonly LoraProjection[],
  target: (leafName: string) => boolean,
  rank: number,
  seed: number,
  scale = 0.1,
): LoraAdapter {
  const random = mulberry32(seed)
  const values = (n: number) => Float32Array.from({ length: n }, () => (random() * 2 - 1) * scale)
  const modules: LoraModule[] = projections
    .filter((p) => target(leafOfKey(p.key)))
    .map((p) => ({ key: p.key, inFeatures: p.inFeatures, outFeatures: p.outFeatures, a: values(p.inFeatures * rank), b: values(rank * p.outFeatures) }))
  const targetModules = [...new Set(modules.map((m) => leafOfKey(m.key)))]
  return { config: { rank, alpha: rank, useRslora: false, scaling: 1, targetModules }, rank, modules, dtype: 'F32' }
}
