/**
 * The reference a served model is held to when no Python reference exists:
 * onnxruntime-node running the model file as it is, one request alone, in a
 * bare greedy loop (no prefixd batching, no graph rewrites). The prefix sits
 * in past_key_values with the mask over it and positions P, P+1, ... (PEFT's
 * layout); float16 files are fed and read in float16.
 */
import * as ort from 'onnxruntime-node'
import { halfToFloat } from '../../src/prefixes/dtype-convert.js'
import type { PrefixKV } from '../../src/domain/prefix-kv.js'
import { argmax } from './reference-compare.js'
import { floatToHalfBits } from './prefix-fixtures.js'

interface Meta {
  name: string
  type?: string
  shape?: ReadonlyArray<number | string>
}

function floats(type: string | undefined, values: Float32Array, dims: number[]): ort.Tensor {
  if (type === 'float16') return new ort.Tensor('float16', Uint16Array.from(values, floatToHalfBits), dims)
  return new ort.Tensor('float32', values, dims)
}

function toFloat32(t: ort.Tensor): Float32Array {
  if (t.type === 'float16') return Float32Array.from(t.data as Uint16Array, halfToFloat)
  return t.data as Float32Array
}

export class OrtGreedy {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly inputs: Meta[],
  ) {}

  static async open(file: string): Promise<OrtGreedy> {
    const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1, interOpNumThreads: 1 })
    return new OrtGreedy(session, (session as unknown as { inputMetadata: Meta[] }).inputMetadata)
  }

  /** Greedy ids of one request; `kv` gives the past's heads and head size when there is no prefix. */
  async generate(promptIds: readonly number[], maxNewTokens: number, kv: { layers: number; heads: number; headDim: number }, prefix?: PrefixKV): Promise<number[]> {
    const P = prefix?.numVirtualTokens ?? 0
    const pastType = this.inputs.find((i) => i.name === 'past_key_values.0.key')?.type
    let past = new Map<string, ort.Tensor>()
    for (let l = 0; l < kv.layers; l++) {
      for (const [kind, data] of [['key', prefix?.keys[l]], ['value', prefix?.values[l]]] as const) {
        past.set(`past_key_values.${l}.${kind}`, floats(pastType, data ?? new Float32Array(0), [1, kv.heads, P, kv.headDim]))
      }
    }
    const out: number[] = []
    let pastLen = P
    let step = [...promptIds]
    while (out.length < maxNewTokens) {
      const n = step.length
      const feeds: Record<string, ort.Tensor> = {
        input_ids: new ort.Tensor('int64', BigInt64Array.from(step, BigInt), [1, n]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(pastLen + n).fill(1n), [1, pastLen + n]),
        ...Object.fromEntries(past),
      }
      const names = this.inputs.map((i) => i.name)
      if (names.includes('position_ids')) feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, j) => BigInt(pastLen + j)), [1, n])
      if (names.includes('use_cache_branch')) feeds.use_cache_branch = new ort.Tensor('bool', Uint8Array.of(pastLen > 0 ? 1 : 0), [1])
      const result = await this.session.run(feeds)
      const logits = toFloat32(result.logits)
      const vocab = logits.length / n
      out.push(argmax(logits.subarray((n - 1) * vocab)))
      past = new Map([...past.keys()].map((name) => [name, result[name.replace('past_key_values', 'present')]]))
      pastLen += n
      step = [out.at(-1)!]
    }
    return out
  }

  async close(): Promise<void> {
    await this.session.release()
  }
}
