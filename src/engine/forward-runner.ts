/**
 * Runs one forward pass of the model on a ForwardFeed: the only place that
 * turns the engine's plain arrays into ONNX Runtime tensors and back.
 */
import * as ort from 'onnxruntime-node'
import type { ForwardFeed } from './batch/forward-feed.js'
import type { KvShape } from './batch/kv-state.js'
import { buildLoraFeed, LoraFeedCache, type LoraInput } from './batch/lora-feed.js'
import type { OnnxSignature } from './onnx-signature.js'

export interface ForwardResult {
  /** [batch, seqLen, vocab] */
  logits: Float32Array
  /** Per layer, the keys/values of the positions this pass computed: [batch, kvHeads, seqLen, headDim]. */
  stepKeys: Float32Array[]
  stepValues: Float32Array[]
}

export class ForwardRunner {
  /** The last batch's LoRA tensors, reused while its rows keep their adapters (every decode step between changes). */
  private readonly loraTensors: LoraFeedCache<Record<string, ort.Tensor>>
  /** What passes without virtual tokens feed: one zero row the graph broadcasts and never selects. */
  private readonly noEmbeds: ort.Tensor | null

  constructor(
    private readonly session: ort.InferenceSession,
    private readonly signature: OnnxSignature,
    private readonly shape: KvShape,
    loraInputs: readonly LoraInput[] = [],
  ) {
    const embeds = signature.inputsEmbeds
    this.noEmbeds = embeds === null ? null : new ort.Tensor('float32', new Float32Array(embeds.hiddenSize), [1, 1, embeds.hiddenSize])
    this.loraTensors = new LoraFeedCache((rows) => {
      const tensors: Record<string, ort.Tensor> = {}
      for (const [name, t] of buildLoraFeed(loraInputs, rows)) tensors[name] = new ort.Tensor('float32', t.data, t.dims)
      return tensors
    })
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
    const out = await this.session.run(feeds)
    const columns = (size: number) => (name: string) =>
      sig.presentIsStep ? (out[name].data as Float32Array) : lastColumns(out[name].data as Float32Array, batch * H, pastLen + seqLen, seqLen, size)
    return {
      logits: out[sig.logits].data as Float32Array,
      stepKeys: sig.presentKeys.map(columns(D)),
      stepValues: sig.presentValues.map(columns(this.shape.valueHeadDim ?? D)),
    }
  }
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
