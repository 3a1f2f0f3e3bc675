/**
 * Seeded randomness for the generated models. Math.random cannot be seeded, and
 * the generator must write byte-identical files for the same seed, so weights
 * come from mulberry32 (a tiny 32-bit generator, plenty for random weights)
 * and Box-Muller for normal samples.
 */

/** A generator of uniform floats in [0, 1) from a 32-bit seed. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * A 32-bit seed for one named tensor (FNV-1a over "seed:name"). Seeding each
 * tensor from its own name keeps a tensor's values independent of the order in
 * which tensors are generated, so adding a tensor never changes the others.
 */
export function tensorSeed(seed: number, name: string): number {
  let hash = 0x811c9dc5
  const text = `${seed}:${name}`
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash
}

/** Fills `out` with samples of N(mean, std²) drawn from `random`. */
export function fillNormal(out: Float32Array, random: () => number, mean: number, std: number): Float32Array {
  for (let i = 0; i < out.length; i += 2) {
    // 1 - u lies in (0, 1], so the logarithm stays finite.
    const radius = Math.sqrt(-2 * Math.log(1 - random()))
    const angle = 2 * Math.PI * random()
    out[i] = mean + std * radius * Math.cos(angle)
    if (i + 1 < out.length) out[i + 1] = mean + std * radius * Math.sin(angle)
  }
  return out
}
