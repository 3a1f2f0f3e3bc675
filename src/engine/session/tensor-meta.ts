/** An input or output of a session as onnxruntime-node describes it (named symbolic dims as strings). */
export interface TensorMeta {
  name: string
  isTensor: boolean
  type?: string
  shape?: ReadonlyArray<number | string>
}
