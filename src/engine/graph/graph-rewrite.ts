/**
 * A graph rewrite derives, at model load, an input the serving path needs
 * from the graph a user brought (optimum's export as is): positions as an
 * input, input embeddings that bypass the token lookup, per-row low-rank
 * updates. Each rewrite lives in its own file and is listed in rewrites.ts.
 */
import type { ModelProto } from 'onnx-buf'

export interface GraphRewrite {
  /** Short name, reported in /info and logs when the rewrite was applied. */
  readonly name: string
  /** Whether this graph needs (and admits) the rewrite; must not mutate. */
  needed(model: ModelProto): boolean
  /** Rewrites the graph in place; throws an Error saying why when it cannot (the loader reports it as a model load error). */
  apply(model: ModelProto): void
}
