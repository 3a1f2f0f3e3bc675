/**
 * For a session that can bind outputs (the C API, session/capi-session.ts): marks a graph whose
 * decode passes can write the whole key/value cache in place, and keeps
 * kv_step_outputs off it. The graph is left as exported: `present` is the
 * Concat of the past and the new columns, which the engine binds to a buffer
 * of its own that becomes the next pass's past (batch/present-arena.ts). No
 * free columns are fed masked, nothing is appended, and rows are re-packed
 * only when they join or leave (docs/performance.md).
 *
 * Applies where kv_step_outputs would (every present output is that Concat)
 * and present is float32: a float16 cache would be cast to float32 and back
 * on every pass, where kv_step_outputs casts only the new columns.
 */
import type { ModelProto } from 'onnx-buf'
import type { GraphRewrite } from './graph-rewrite.js'
import { kvStepOutputs } from './kv-step-outputs.js'

const PRESENT = /^present\.\d+\.(key|value)$/
/** TensorProto.DataType.FLOAT */
const FLOAT = 1

function presentIsFloat32(model: ModelProto): boolean {
  const outputs = model.graph?.output.filter((o) => PRESENT.test(o.name)) ?? []
  return outputs.every((o) => o.type?.value.case === 'tensorType' && o.type.value.value.elemType === FLOAT)
}

export const presentInPlace: GraphRewrite = {
  name: 'present_in_place',
  needed: (model) => kvStepOutputs.needed(model) && presentIsFloat32(model),
  // A mark only: the graph already returns present as the engine binds it.
  apply: () => {},
}

/** The rewrites with kv_step_outputs giving way to present_in_place wherever that applies. */
export function withPresentInPlace(rewrites: readonly GraphRewrite[]): GraphRewrite[] {
  return rewrites.flatMap((r) =>
    r === kvStepOutputs ? [presentInPlace, { ...kvStepOutputs, needed: (model: ModelProto) => kvStepOutputs.needed(model) && !presentInPlace.needed(model) }] : [r],
  )
}
