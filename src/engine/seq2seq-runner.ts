/**
 * The ONNX Runtime calls of an encoder-decoder model, and nothing else: the
 * encoder over newly admitted sources, the first decoder call that yields the
 * cross-attention keys/values, and one with-past decoder step for a cohort.
 * Turns the engine's plain arrays into tensors and back.
 */
import * as ort from 'onnxruntime-node'
import type { Cohort, Seq2seqShape } from './seq2seq-cohort.js'
import { pastName, presentName, type Seq2seqSessions } from './seq2seq-model.js'

/** Token id written into source padding; the encoder mask hides it. */
const PAD_ID = 0n

export interface EncodedSources {
  rows: number
  sourceLen: number
  /** [rows, sourceLen, hidden] */
  hidden: Float32Array
  /** [rows, sourceLen] */
  mask: BigInt64Array
}

export interface FirstStep {
  /** [rows, 1, vocab]: the next-token logits of rows without a prefix. */
  logits: Float32Array
  /** Per layer [rows, heads, 1, headDim]: the self-attention past after decoder_start. */
  selfKeys: Float32Array[]
  selfValues: Float32Array[]
  /** Per layer [rows, heads, sourceLen, headDim]. */
  crossKeys: Float32Array[]
  crossValues: Float32Array[]
}

export interface DecoderStep {
  /** [rows, 1, vocab] */
  logits: Float32Array
  presentKeys: Float32Array[]
  presentValues: Float32Array[]
}

export class Seq2seqRunner {
  constructor(
    private readonly sessions: Seq2seqSessions,
    private readonly shape: Seq2seqShape,
  ) {}

  /** One encoder pass over every source, right-padded (BART's encoder positions are absolute). */
  async encode(sources: readonly (readonly number[])[]): Promise<EncodedSources> {
    const rows = sources.length
    const sourceLen = Math.max(...sources.map((s) => s.length))
    const ids = new BigInt64Array(rows * sourceLen).fill(PAD_ID)
    const mask = new BigInt64Array(rows * sourceLen)
    sources.forEach((src, r) => {
      src.forEach((id, j) => (ids[r * sourceLen + j] = BigInt(id)))
      mask.fill(1n, r * sourceLen, r * sourceLen + src.length)
    })
    const dims = [rows, sourceLen]
    const out = await this.sessions.encoder.run({
      input_ids: new ort.Tensor('int64', ids, dims),
      attention_mask: new ort.Tensor('int64', mask, dims),
    })
    return { rows, sourceLen, hidden: out.last_hidden_state.data as Float32Array, mask }
  }

  /** The decoder on [decoder_start] for every encoded row: the only graph that outputs cross-attention keys/values. */
  async firstStep(enc: EncodedSources, startId: number): Promise<FirstStep> {
    const { numLayers, numHeads: H, headDim: D } = this.shape
    const feeds = this.encoderFeeds(enc.rows, enc.sourceLen, enc.hidden, enc.mask)
    feeds.input_ids = new ort.Tensor('int64', new BigInt64Array(enc.rows).fill(BigInt(startId)), [enc.rows, 1])
    if (this.sessions.merged) {
      // The merged graph's no-cache branch still declares the past inputs: zero-length ones.
      const empty = new ort.Tensor('float32', new Float32Array(0), [enc.rows, H, 0, D])
      for (let i = 0; i < numLayers; i++) {
        for (const part of ['decoder', 'encoder'] as const) {
          feeds[pastName(i, part, 'key')] = empty
          feeds[pastName(i, part, 'value')] = empty
        }
      }
      feeds.use_cache_branch = new ort.Tensor('bool', new Uint8Array([0]), [1])
    }
    const out = await this.sessions.decoder.run(feeds)
    const layers = (part: 'decoder' | 'encoder', kv: 'key' | 'value') =>
      Array.from({ length: numLayers }, (_, i) => out[presentName(i, part, kv)].data as Float32Array)
    return {
      logits: out.logits.data as Float32Array,
      selfKeys: layers('decoder', 'key'),
      selfValues: layers('decoder', 'value'),
      crossKeys: layers('encoder', 'key'),
      crossValues: layers('encoder', 'value'),
    }
  }

  /** One with-past step: every row of the cohort feeds one token on top of its past. */
  async step(cohort: Cohort, tokens: readonly number[]): Promise<DecoderStep> {
    const { numLayers, numHeads: H, headDim: D } = this.shape
    const rows = cohort.rowIds.length
    const feeds = this.encoderFeeds(rows, cohort.sourceLen, cohort.encoderHidden, cohort.encoderMask)
    feeds.input_ids = new ort.Tensor('int64', BigInt64Array.from(tokens, (t) => BigInt(t)), [rows, 1])
    const selfDims = [rows, H, cohort.pastLen, D]
    const crossDims = [rows, H, cohort.sourceLen, D]
    for (let i = 0; i < numLayers; i++) {
      feeds[pastName(i, 'decoder', 'key')] = new ort.Tensor('float32', cohort.selfKeys[i], selfDims)
      feeds[pastName(i, 'decoder', 'value')] = new ort.Tensor('float32', cohort.selfValues[i], selfDims)
      feeds[pastName(i, 'encoder', 'key')] = new ort.Tensor('float32', cohort.crossKeys[i], crossDims)
      feeds[pastName(i, 'encoder', 'value')] = new ort.Tensor('float32', cohort.crossValues[i], crossDims)
    }
    if (this.sessions.merged) feeds.use_cache_branch = new ort.Tensor('bool', new Uint8Array([1]), [1])
    const out = await this.sessions.decoderWithPast.run(feeds)
    const layers = (kv: 'key' | 'value') => Array.from({ length: numLayers }, (_, i) => out[presentName(i, 'decoder', kv)].data as Float32Array)
    return { logits: out.logits.data as Float32Array, presentKeys: layers('key'), presentValues: layers('value') }
  }

  private encoderFeeds(rows: number, sourceLen: number, hidden: Float32Array, mask: BigInt64Array): Record<string, ort.Tensor> {
    return {
      encoder_hidden_states: new ort.Tensor('float32', hidden, [rows, sourceLen, this.shape.hiddenSize]),
      encoder_attention_mask: new ort.Tensor('int64', mask, [rows, sourceLen]),
    }
  }
}
