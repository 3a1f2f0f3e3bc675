/**
 * The reference the server is measured against: a bare onnxruntime-node loop
 * on the same model file, in the same process, with the same session options
 * as the engine (CPU, graph optimization "all", 1 inter-op and N intra-op
 * threads). One batch of all rows, each with its own prefix as past
 * key/values; a prefill pass, then decode passes that feed `present` back as
 * past and pick each row's next token by argmax. No scheduler, no masks to
 * re-pack, no logprobs, no text: the upper bound for this batch on this CPU.
 */
import * as ort from 'onnxruntime-node'
import type { PrefixKV } from '../src/domain/prefix-kv.js'

export interface LoopTiming {
  tokens: number
  seconds: number
  /** Time inside session.run, prefill included. */
  runSeconds: number
  prefillSeconds: number
  decodeSteps: number
}

export class BareLoop {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly vocabSize: number,
  ) {}

  /** `model`: a file, or a derived graph's bytes (graph/derive-model.ts). */
  static async create(model: string | Uint8Array, threads: number, vocabSize: number): Promise<BareLoop> {
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      interOpNumThreads: 1,
      intraOpNumThreads: threads,
    }
    const session = typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options)
    return new BareLoop(session, vocabSize)
  }

  /**
   * Every row gets `newTokens` tokens: the prefill pass yields the first,
   * newTokens - 1 decode passes the rest (the same count the server generates).
   * All prefixes must have one length and all prompts another.
   */
  async run(prefixes: readonly PrefixKV[], prompts: readonly number[][], newTokens: number): Promise<LoopTiming> {
    const B = prompts.length
    const n = prompts[0].length
    const { numLayers: L, numKvHeads: H, headDim: D, numVirtualTokens: P } = prefixes[0]
    const started = performance.now()
    let runMs = 0
    const pastKeys: ort.Tensor[] = []
    const pastValues: ort.Tensor[] = []
    for (let layer = 0; layer < L; layer++) {
      const k = new Float32Array(B * H * P * D)
      const v = new Float32Array(B * H * P * D)
      prefixes.forEach((p, r) => {
        k.set(p.keys[layer], r * H * P * D)
        v.set(p.values[layer], r * H * P * D)
      })
      pastKeys.push(new ort.Tensor('float32', k, [B, H, P, D]))
      pastValues.push(new ort.Tensor('float32', v, [B, H, P, D]))
    }
    let feeds = this.feeds(
      BigInt64Array.from(prompts.flat(), (x) => BigInt(x)),
      n,
      P,
      pastKeys,
      pastValues,
      B,
    )
    let t0 = performance.now()
    let out = await this.session.run(feeds)
    runMs += performance.now() - t0
    const prefillSeconds = (performance.now() - started) / 1000
    let next = this.argmax(out.logits.data as Float32Array, B, n)
    let past = P + n
    for (let step = 1; step < newTokens; step++) {
      feeds = this.feeds(
        BigInt64Array.from(next, (x) => BigInt(x)),
        1,
        past,
        Array.from({ length: L }, (_, i) => out[`present.${i}.key`]),
        Array.from({ length: L }, (_, i) => out[`present.${i}.value`]),
        B,
      )
      t0 = performance.now()
      out = await this.session.run(feeds)
      runMs += performance.now() - t0
      next = this.argmax(out.logits.data as Float32Array, B, 1)
      past++
    }
    return { tokens: B * newTokens, seconds: (performance.now() - started) / 1000, runSeconds: runMs / 1000, prefillSeconds, decodeSteps: newTokens - 1 }
  }

  /** Inputs of one pass: every row real everywhere (equal lengths need no padding). */
  private feeds(ids: BigInt64Array, seq: number, past: number, keys: ort.Tensor[], values: ort.Tensor[], B: number): Record<string, ort.Tensor> {
    const positions = new BigInt64Array(B * seq)
    for (let r = 0; r < B; r++) for (let j = 0; j < seq; j++) positions[r * seq + j] = BigInt(past + j)
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [B, seq]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(B * (past + seq)).fill(1n), [B, past + seq]),
      position_ids: new ort.Tensor('int64', positions, [B, seq]),
    }
    // A derived inputs_embeds input, fed as the engine feeds passes without virtual tokens: one zero row.
    const embeds = (this.session as unknown as { inputMetadata: Array<{ name: string; shape?: Array<number | string> }> }).inputMetadata.find((m) => m.name === 'inputs_embeds')
    const hidden = embeds?.shape?.[2]
    if (typeof hidden === 'number') feeds.inputs_embeds = new ort.Tensor('float32', new Float32Array(hidden), [1, 1, hidden])
    keys.forEach((k, i) => {
      feeds[`past_key_values.${i}.key`] = k
      feeds[`past_key_values.${i}.value`] = values[i]
    })
    return feeds
  }

  /** Each row's most likely next token, at its last position. */
  private argmax(logits: Float32Array, B: number, seq: number): number[] {
    const V = this.vocabSize
    const next: number[] = []
    for (let r = 0; r < B; r++) {
      const base = ((r + 1) * seq - 1) * V
      let best = 0
      for (let j = 1; j < V; j++) if (logits[base + j] > logits[base + best]) best = j
      next.push(best)
    }
    return next
  }
}
