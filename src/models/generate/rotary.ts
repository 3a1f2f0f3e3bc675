import type { ModelDims } from './model-dims.js'

/**
 * Rotary tables [maxPositions, headDim] in the Hugging Face "rotate_half"
 * layout: column j uses frequency theta^(-2 (j mod D/2) / D). HF computes
 * x·cos + rotate_half(x)·sin with rotate_half(x) = [-x2, x1]; the graph
 * instead multiplies the half-swapped [x2, x1] by a sine whose first half is
 * negated, the same arithmetic without a Neg node per layer.
 */
export function rotaryTables(d: ModelDims): { cos: Float32Array; signedSin: Float32Array } {
  const half = d.headDim / 2
  const cos = new Float32Array(d.maxPositions * d.headDim)
  const signedSin = new Float32Array(d.maxPositions * d.headDim)
  for (let pos = 0; pos < d.maxPositions; pos++) {
    for (let j = 0; j < d.headDim; j++) {
      const angle = pos * Math.pow(d.ropeTheta, (-2 * (j % half)) / d.headDim)
      cos[pos * d.headDim + j] = Math.cos(angle)
      signedSin[pos * d.headDim + j] = j < half ? -Math.sin(angle) : Math.sin(angle)
    }
  }
  return { cos, signedSin }
}
