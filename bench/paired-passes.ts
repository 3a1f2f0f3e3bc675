/**
 * Two sessions on the same inputs, pass by pass: a prefill then decode passes
 * of one batch, each pass run on both sessions back to back (the order flips
 * every pass), so that the machine's load, which drifts by a factor of several
 * within a minute on a shared machine, weighs on both alike. Gives the per-pass
 * time ratio b/a. Both sessions must compute the same function (the derived
 * graph is exact), so both follow the same tokens.
 */
import * as ort from 'onnxruntime-node'

export interface PairedTiming {
  /** time(b) / time(a), one per pass. */
  ratios: number[]
  secondsA: number
  secondsB: number
}

type Feeds = Record<string, ort.Tensor>

export async function pairedPasses(
  a: ort.InferenceSession,
  b: ort.InferenceSession,
  prompts: readonly number[][],
  newTokens: number,
  layers: number,
  kvDims: { heads: number; headDim: number },
  extraB: Feeds,
): Promise<PairedTiming> {
  const B = prompts.length
  const n = prompts[0].length
  const { heads: H, headDim: D } = kvDims
  const emptyPast = () => new ort.Tensor('float32', new Float32Array(0), [B, H, 0, D])
  const feedsFor = (ids: BigInt64Array, seq: number, past: number, presents: (name: string) => ort.Tensor): Feeds => {
    const feeds: Feeds = {
      input_ids: new ort.Tensor('int64', ids, [B, seq]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(B * (past + seq)).fill(1n), [B, past + seq]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: B * seq }, (_, i) => BigInt(past + (i % seq))), [B, seq]),
    }
    for (let i = 0; i < layers; i++) {
      feeds[`past_key_values.${i}.key`] = presents(`present.${i}.key`)
      feeds[`past_key_values.${i}.value`] = presents(`present.${i}.value`)
    }
    return feeds
  }
  let feedsA = feedsFor(BigInt64Array.from(prompts.flat(), BigInt), n, 0, emptyPast)
  let feedsB = feedsA
  const ratios: number[] = []
  let secondsA = 0
  let secondsB = 0
  for (let step = 0; step < newTokens; step++) {
    const timeA = async () => {
      const t0 = performance.now()
      const out = await a.run(feedsA)
      return { out, ms: performance.now() - t0 }
    }
    const timeB = async () => {
      const t0 = performance.now()
      const out = await b.run({ ...feedsB, ...extraB })
      return { out, ms: performance.now() - t0 }
    }
    const [ra, rb] = step % 2 === 0 ? [await timeA(), await timeB()] : await timeB().then(async (y) => [await timeA(), y] as const)
    ratios.push(rb.ms / ra.ms)
    secondsA += ra.ms / 1000
    secondsB += rb.ms / 1000
    const seq = step === 0 ? n : 1
    const logits = ra.out.logits.data as Float32Array
    const V = logits.length / (B * seq)
    const next = new BigInt64Array(B)
    for (let r = 0; r < B; r++) {
      const base = ((r + 1) * seq - 1) * V
      let best = 0
      for (let j = 1; j < V; j++) if (logits[base + j] > logits[base + best]) best = j
      next[r] = BigInt(best)
    }
    const past = step === 0 ? n : n + step
    feedsA = feedsFor(next, 1, past, (name) => ra.out[name])
    feedsB = feedsFor(next, 1, past, (name) => rb.out[name])
  }
  return { ratios, secondsA, secondsB }
}
