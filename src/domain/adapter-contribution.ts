/**
 * What one adapter contributes to a row of a batch, named by where it acts in
 * the forward pass rather than by how it was trained:
 * - `past_kv`: per-layer keys and values ahead of the row's own tokens
 *   (prefix tuning);
 * - `input_embeds`: vectors in input-embedding space placed before the row's
 *   own tokens, which then pass through every layer as ordinary tokens
 *   (prompt tuning, P-tuning).
 * The engine assembles one forward pass from every row's contributions and
 * never needs to know which adapter kind produced them. A kind that acts
 * elsewhere (LoRA: a per-row low-rank update) adds a member here and teaches
 * the batch assembly where to put it.
 */
import { prefixKVBytes, type PrefixKV } from './prefix-kv.js'

/** P vectors of the model's hidden size, [numVirtualTokens, hiddenSize] row-major, float32. */
export interface VirtualEmbeddings {
  numVirtualTokens: number
  hiddenSize: number
  values: Float32Array
}

export type AdapterContribution = { kind: 'past_kv'; prefix: PrefixKV } | { kind: 'input_embeds'; embeds: VirtualEmbeddings }

export type ContributionKind = AdapterContribution['kind']

/** Bytes the engine holds for one contribution (what the engine cache budgets). */
export function contributionBytes(c: AdapterContribution): number {
  switch (c.kind) {
    case 'past_kv':
      return prefixKVBytes(c.prefix)
    case 'input_embeds':
      return c.embeds.values.length * 4
  }
}

/** Positions the contribution takes ahead of the row's own tokens (virtual tokens). */
export function contributionPositions(c: AdapterContribution): number {
  switch (c.kind) {
    case 'past_kv':
      return c.prefix.numVirtualTokens
    case 'input_embeds':
      return c.embeds.numVirtualTokens
  }
}
