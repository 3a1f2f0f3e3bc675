/**
 * What the engine needs of an ONNX Runtime session: its inputs' and outputs'
 * metadata, and one forward pass. Two kinds implement it: onnxruntime-node's
 * InferenceSession (nodePassSession), and the C API session
 * (capi-session.ts), which can also write outputs into buffers the
 * caller gives (IO binding).
 */
import type * as ort from 'onnxruntime-node'
import type { TensorMeta } from './tensor-meta.js'

export type PassOutputs = Record<string, { data: ort.Tensor['data'] }>

export interface PassSession {
  readonly inputMetadata: readonly TensorMeta[]
  readonly outputMetadata: readonly TensorMeta[]
  /** Whether run() writes the outputs named in `into` into those tensors' buffers. */
  readonly bindsOutputs: boolean
  /**
   * One pass: returns every output in `fetches`. Those also in `into` are
   * written into its tensors (whose dims must be the output's), and returned
   * as those same buffers; a session that cannot bind outputs refuses `into`.
   */
  run(feeds: Record<string, ort.Tensor>, fetches: readonly string[], into?: Record<string, ort.Tensor>): Promise<PassOutputs>
  release(): Promise<void>
}

/** onnxruntime-node's session as a PassSession: every output comes back as a new copy. */
export function nodePassSession(session: ort.InferenceSession): PassSession {
  const meta = session as unknown as { inputMetadata: TensorMeta[]; outputMetadata: TensorMeta[] }
  return {
    inputMetadata: meta.inputMetadata,
    outputMetadata: meta.outputMetadata,
    bindsOutputs: false,
    async run(feeds, fetches, into) {
      if (into !== undefined && Object.keys(into).length > 0) throw new Error('onnxruntime-node cannot write outputs into given buffers')
      return session.run(feeds, [...fetches])
    },
    release: () => session.release(),
  }
}
