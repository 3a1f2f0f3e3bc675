/**
 * Where a row's adapter contributions go, in the order the request named its
 * adapters: every `past_kv` contribution joins the row's past (concatenated),
 * every `input_embeds` contribution becomes virtual tokens at the head of the
 * row's own sequence (concatenated), before BOS. Positions count from the
 * first past slot: past 0…Pk-1, virtual tokens Pk…Pk+Pe-1, then the prompt.
 * For one adapter this is exactly PEFT's layout for its kind (prefix tuning:
 * prompt at P…; prompt tuning: virtual tokens 0…P-1, BOS at P).
 */
import type { AdapterContribution, VirtualEmbeddings } from '../../domain/adapter-contribution.js'
import type { PrefixKV } from '../../domain/prefix-kv.js'

export interface RowLayout {
  past: PrefixKV[]
  /** Past slots the row's prefixes fill. */
  pastLength: number
  embeds: VirtualEmbeddings[]
  /** Virtual tokens fed as input embeddings ahead of the prompt. */
  embedsLength: number
}

export function rowLayout(adapters: readonly AdapterContribution[]): RowLayout {
  const layout: RowLayout = { past: [], pastLength: 0, embeds: [], embedsLength: 0 }
  for (const a of adapters) {
    if (a.kind === 'past_kv') {
      layout.past.push(a.prefix)
      layout.pastLength += a.prefix.numVirtualTokens
    } else {
      layout.embeds.push(a.embeds)
      layout.embedsLength += a.embeds.numVirtualTokens
    }
  }
  return layout
}
