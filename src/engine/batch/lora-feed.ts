/**
 * The per-row low-rank factors of one batch (see graph/lora-rewrite.ts), as
 * plain arrays: for every LoRA input pair of the model, A [batch, in, r] and
 * B [batch, r, out] where r is the largest rank any row has on that module.
 * Rows without a LoRA on the module, and the padding of smaller ranks, are
 * zeros, so they add exactly nothing. No row with a LoRA anywhere gives r = 0
 * everywhere: empty tensors, an empty product, nothing added.
 *
 * Built once per batch membership: LoraFeedCache keeps the last one and
 * returns it again while the rows' adapters are the same, so a decode step
 * copies nothing.
 */
import type { LoraAdapter, LoraModule } from '../../domain/lora-weights.js'

/** One module's input pair, as the derived model declares it. */
export interface LoraInput {
  key: string
  a: string
  b: string
  inFeatures: number
  outFeatures: number
}

export interface LoraTensor {
  data: Float32Array
  dims: number[]
}

const byKeyCache = new WeakMap<LoraAdapter, Map<string, LoraModule>>()

function moduleOf(adapter: LoraAdapter, key: string): LoraModule | undefined {
  let byKey = byKeyCache.get(adapter)
  if (!byKey) byKeyCache.set(adapter, (byKey = new Map(adapter.modules.map((m) => [m.key, m]))))
  return byKey.get(key)
}

/** A [batch, in, r] and B [batch, r, out] for every input pair, by input name. */
export function buildLoraFeed(inputs: readonly LoraInput[], rows: readonly (LoraAdapter | null)[]): Map<string, LoraTensor> {
  const batch = rows.length
  const out = new Map<string, LoraTensor>()
  for (const input of inputs) {
    const { inFeatures: n, outFeatures: m } = input
    const modules = rows.map((adapter) => (adapter ? moduleOf(adapter, input.key) : undefined))
    const r = Math.max(0, ...modules.map((mod) => (mod ? mod.a.length / n : 0)))
    const a = new Float32Array(batch * n * r)
    const b = new Float32Array(batch * r * m)
    modules.forEach((mod, row) => {
      if (!mod) return
      const rank = mod.a.length / n
      for (let i = 0; i < n; i++) a.set(mod.a.subarray(i * rank, (i + 1) * rank), (row * n + i) * r)
      // B's rows beyond this rank stay zero: the padding adds nothing.
      b.set(mod.b, row * r * m)
    })
    out.set(input.a, { data: a, dims: [batch, n, r] })
    out.set(input.b, { data: b, dims: [batch, r, m] })
  }
  return out
}

/** Remembers the last batch's factors: the same adapters in the same rows reuse them. */
export class LoraFeedCache<T> {
  private readonly ids = new WeakMap<LoraAdapter, number>()
  private nextId = 1
  private lastKey: string | null = null
  private last: T | null = null

  constructor(private readonly make: (rows: readonly (LoraAdapter | null)[]) => T) {}

  private idOf(adapter: LoraAdapter | null): number {
    if (!adapter) return 0
    let id = this.ids.get(adapter)
    if (id === undefined) this.ids.set(adapter, (id = this.nextId++))
    return id
  }

  get(rows: readonly (LoraAdapter | null)[]): T {
    const key = rows.map((a) => this.idOf(a)).join(',')
    if (key !== this.lastKey || this.last === null) {
      this.last = this.make(rows)
      this.lastKey = key
    }
    return this.last
  }
}
