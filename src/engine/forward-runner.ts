/**
 * Runs one forward pass of the model on a ForwardFeed: the only place that
 * turns the engine's plain arrays into ONNX Runtime tensors and back.
 */
import * as ort from 'onnxruntime-node'
import type { ForwardFeed } from './batch/forward-feed.js'
import type { KvShape } from './batch/kv-state.js'
import { buildLoraFeed, LoraFeedCache, type LoraInput } from './batch/lora-feed.js'
import { PresentArena } from './batch/present-arena.js'
import type { OnnxSignature } from './onnx-signature.js'
import { LOGITS_TO_KEEP } from './graph/logits-to-keep.js'
import { nodePassSession, type PassSession } from './session/pass-session.js'

export interface ForwardResult {
  /** [batch, positions, vocab]; null when the pass did not fetch them (every row took the graph's greedy pick). */
  logits: Float32Array | null
  /** How many of each row's last positions the logits and picks cover. */
  positions: number
  /** The graph's greedy pick at each [batch, positions] (graph/greedy-pick.ts); null when the graph has none. */
  greedy: GreedyPicks | null
  /** Per layer, the keys/values of the positions this pass computed: [batch, kvHeads, seqLen, headDim]. */
  stepKeys: Float32Array[]
  stepValues: Float32Array[]
  /** A `presentInPlace` pass's whole present, per layer [batch, kvHeads, pastLen + 1, headDim] (its step columns are then empty). */
  present?: { keys: Float32Array[]; values: Float32Array[] }
}

export interface GreedyPicks {
  tokens: BigInt64Array
  /** Raw log-softmax of each picked token; NaN where the row's logits cannot be sampled. */
  logprobs: Float32Array
}

/** A pass's logits, for callers that asked for them (a feed's default): throws when the pass did not fetch them. */
export function fetchedLogits(result: ForwardResult): Float32Array {
  if (result.logits === null) throw new Error('the pass did not fetch logits (its feed set fetchLogits to false)')
  return result.logits
}

export class ForwardRunner {
  /** The last batch's LoRA tensors, reused while its rows keep their adapters (every decode step between changes). */
  private readonly loraTensors: LoraFeedCache<Record<string, ort.Tensor>>
  /** What passes without virtual tokens feed: one zero row the graph broadcasts and never selects. */
  private readonly noEmbeds: ort.Tensor | null
  /** The greedy pick's logprob switch, off and on: two constants rather than a new tensor per pass. */
  private readonly logprobSwitch = [false, true].map((on) => new ort.Tensor('bool', Uint8Array.of(on ? 1 : 0), [1]))
  /** What a pass fetches: with the logits, or (when the graph picks greedy tokens) without them. */
  private readonly fetchLists: { withLogits: string[]; withoutLogits: string[] }
  private readonly session: PassSession
  /** Where decode passes write the whole present, when the session binds it in place (else null). */
  private readonly arena: PresentArena | null

  constructor(
    session: PassSession | ort.InferenceSession,
    private readonly signature: OnnxSignature,
    private readonly shape: KvShape,
    loraInputs: readonly LoraInput[] = [],
  ) {
    this.session = 'bindsOutputs' in session ? session : nodePassSession(session)
    this.arena = signature.presentInPlace && this.session.bindsOutputs ? new PresentArena(shape.numLayers) : null
    const embeds = signature.inputsEmbeds
    const picks = signature.greedyPick ? [signature.greedyPick.token, signature.greedyPick.logprob] : []
    const kv = [...signature.presentKeys, ...signature.presentValues]
    this.fetchLists = { withLogits: [signature.logits, ...picks, ...kv], withoutLogits: [...picks, ...kv] }
    this.noEmbeds = embeds === null ? null : new ort.Tensor('float32', new Float32Array(embeds.hiddenSize), [1, 1, embeds.hiddenSize])
    this.loraTensors = new LoraFeedCache((rows) => {
      const tensors: Record<string, ort.Tensor> = {}
      for (const [name, t] of buildLoraFeed(loraInputs, rows)) tensors[name] = new ort.Tensor('float32', t.data, t.dims)
      return tensors
    })
  }

  /** Whether decode passes of a cache without free columns write the whole present in place (the engine then keeps no room). */
  get writesPresentInPlace(): boolean {
    return this.arena !== null
  }

  async run(feed: ForwardFeed): Promise<ForwardResult> {
    const { batch, seqLen, pastLen } = feed
    const { numKvHeads: H, headDim: D } = this.shape
    const sig = this.signature
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', feed.inputIds, [batch, seqLen]),
      attention_mask: new ort.Tensor('int64', feed.attentionMask, [batch, pastLen + seqLen]),
    }
    if (sig.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', feed.positionIds, [batch, seqLen])
    if (sig.inputsEmbeds !== null) {
      const { name, hiddenSize } = sig.inputsEmbeds
      feeds[name] = feed.inputsEmbeds === null ? this.noEmbeds! : new ort.Tensor('float32', feed.inputsEmbeds, [batch, seqLen, hiddenSize])
    } else if (feed.inputsEmbeds !== null) {
      // The store refuses input-embedding adapters for such a model; this guards the engine's own invariant.
      throw new Error('this model takes no inputs_embeds: its token-embedding lookup could not be derived')
    }
    if (sig.hasUseCacheBranch) feeds.use_cache_branch = new ort.Tensor('bool', new Uint8Array([pastLen > 0 ? 1 : 0]), [1])
    const keyDims = [batch, H, pastLen, D]
    const valueDims = [batch, H, pastLen, this.shape.valueHeadDim ?? D]
    for (let i = 0; i < sig.pastKeys.length; i++) {
      feeds[sig.pastKeys[i]] = new ort.Tensor('float32', feed.pastKeys[i], keyDims)
      feeds[sig.pastValues[i]] = new ort.Tensor('float32', feed.pastValues[i], valueDims)
    }
    Object.assign(feeds, this.loraTensors.get(feed.loraRows ?? new Array(batch).fill(null)))
    if (sig.hasLogitsToKeep) feeds[LOGITS_TO_KEEP] = new ort.Tensor('int64', BigInt64Array.of(BigInt(feed.logitsToKeep)), [1])
    if (sig.greedyPick?.wanted) feeds[sig.greedyPick.wanted] = this.logprobSwitch[feed.greedyLogprobs === false ? 0 : 1]
    // Outputs not fetched are not copied out of the runtime: the logits are the largest.
    const into = feed.presentInPlace ? this.presentInto(feed) : undefined
    let fetchLogits = feed.fetchLogits || sig.greedyPick === null
    let out = await this.session.run(feeds, fetchLogits ? this.fetchLists.withLogits : this.fetchLists.withoutLogits, into?.tensors)
    if (!fetchLogits && !soundPicks(out[sig.greedyPick!.logprob].data as Float32Array)) {
      // A row with NaN or infinite logits: the engine's sampler decides from the logits (rare; the same pass again).
      fetchLogits = true
      out = await this.session.run(feeds, this.fetchLists.withLogits, into?.tensors)
    }
    const pick = sig.greedyPick
    const result: ForwardResult = {
      logits: fetchLogits ? (out[sig.logits].data as Float32Array) : null,
      positions: sig.hasLogitsToKeep ? Math.min(feed.logitsToKeep, seqLen) : seqLen,
      greedy: pick ? { tokens: out[pick.token].data as BigInt64Array, logprobs: out[pick.logprob].data as Float32Array } : null,
      stepKeys: [],
      stepValues: [],
    }
    if (into) return { ...result, present: into.present }
    const columns = (size: number) => (name: string) =>
      sig.presentIsStep ? (out[name].data as Float32Array) : lastColumns(out[name].data as Float32Array, batch * H, pastLen + seqLen, seqLen, size)
    return { ...result, stepKeys: sig.presentKeys.map(columns(D)), stepValues: sig.presentValues.map(columns(this.shape.valueHeadDim ?? D)) }
  }

  /** A decode pass's present outputs, bound to the arena's set that does not hold its past. */
  private presentInto(feed: ForwardFeed): { tensors: Record<string, ort.Tensor>; present: NonNullable<ForwardResult['present']> } {
    if (this.arena === null) throw new Error('this runner cannot write present in place (its session does not bind outputs)')
    const { batch, pastLen, seqLen } = feed
    const { numKvHeads: H, headDim: D } = this.shape
    const Dv = this.shape.valueHeadDim ?? D
    const total = pastLen + seqLen
    const present = this.arena.views(feed.pastKeys[0], batch * H * total * D, batch * H * total * Dv)
    const tensors: Record<string, ort.Tensor> = {}
    this.signature.presentKeys.forEach((name, i) => (tensors[name] = new ort.Tensor('float32', present.keys[i], [batch, H, total, D])))
    this.signature.presentValues.forEach((name, i) => (tensors[name] = new ort.Tensor('float32', present.values[i], [batch, H, total, Dv])))
    return { tensors, present }
  }
}

/** Whether every greedy pick of a pass can be used: a NaN logprob (or soundness mark) marks a row with NaN or infinite logits. */
function soundPicks(logprobs: Float32Array): boolean {
  for (let i = 0; i < logprobs.length; i++) if (!Number.isFinite(logprobs[i])) return false
  return true
}

/** The last `count` of `length` columns of each of `blocks` [length, width] blocks: a graph without step outputs returns past + new. */
function lastColumns(present: Float32Array, blocks: number, length: number, count: number, width: number): Float32Array {
  const out = new Float32Array(blocks * count * width)
  for (let b = 0; b < blocks; b++) {
    const from = (b * length + length - count) * width
    out.set(present.subarray(from, from + count * width), b * count * width)
  }
  return out
}
