/**
 * What the engine worker serves, whatever the model's architecture: it takes
 * submitted requests with their resolved prefixes and streams tokens to the
 * EngineSink it was opened with. Decoder-only and encoder-decoder models each
 * build one (worker.ts, seq2seq-engine.ts).
 */
import type { AdapterContribution, ContributionKind } from '../domain/adapter-contribution.js'
import type { ModelSpec } from '../domain/model-spec.js'
import type { SubmitMessage } from './protocol.js'

export interface ServingEngine {
  spec: ModelSpec
  /** The adapter contributions this model can take (the store refuses the others). */
  accepts: ContributionKind[]
  submit(msg: SubmitMessage, adapters: AdapterContribution[]): void
  cancel(id: number): void
  stop(): Promise<void>
  /**
   * Small passes before the server says it is ready (the first run of a session
   * allocates and plans); resolves to the spec with what they measured.
   */
  warmUp(): Promise<ModelSpec>
}

