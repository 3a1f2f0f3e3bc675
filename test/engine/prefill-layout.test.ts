/**
 * The prefill feed of rows with every kind of contribution, checked slot by
 * slot against the layout rule (row-layout.ts): prefixes right-aligned in the
 * past, virtual tokens (input embeddings) at the head of the row's sequence
 * before BOS, prompts left-padded, positions counted from the row's first past
 * slot, the mask over exactly the real slots.
 */
import t from 'tap'
import type { AdapterContribution } from '../../src/domain/adapter-contribution.js'
import { buildPrefill, VIRTUAL_TOKEN_ID } from '../../src/engine/batch/forward-feed.js'
import { rowLayout } from '../../src/engine/batch/row-layout.js'

const shape = { numLayers: 1, numKvHeads: 1, headDim: 2 }
const HIDDEN = 3
/** A prefix of P tokens whose key at token j is [base + j, base + j] (values negated). */
const prefix = (P: number, base: number): AdapterContribution => ({
  kind: 'past_kv',
  prefix: {
    numVirtualTokens: P, numLayers: 1, numKvHeads: 1, headDim: 2,
    keys: [Float32Array.from({ length: 2 * P }, (_, i) => base + (i >> 1))],
    values: [Float32Array.from({ length: 2 * P }, (_, i) => -(base + (i >> 1)))],
  },
})
/** P virtual tokens whose vector j is [base + j] * HIDDEN. */
const embeds = (P: number, base: number): AdapterContribution => ({
  kind: 'input_embeds',
  embeds: { numVirtualTokens: P, hiddenSize: HIDDEN, values: Float32Array.from({ length: P * HIDDEN }, (_, i) => base + Math.floor(i / HIDDEN)) },
})

t.test('composition keeps order within each place and counts positions past, then virtual, then prompt', async (t) => {
  const layout = rowLayout([embeds(2, 10), prefix(3, 1), embeds(1, 20), prefix(1, 7)])
  t.same([layout.pastLength, layout.embedsLength], [4, 3])
  t.same(layout.past.map((p) => p.keys[0][0]), [1, 7], 'prefixes in the order named')
  t.same(layout.embeds.map((e) => e.values[0]), [10, 20], 'virtual tokens in the order named')
})

t.test('a batch of a prefix row, a prompt-tuning row, a composed row and a bare row', async (t) => {
  const rows = [
    { id: 1, promptIds: [1, 50, 51], adapters: [prefix(2, 100)] },
    { id: 2, promptIds: [1, 60], adapters: [embeds(2, 10)] },
    { id: 3, promptIds: [1, 70], adapters: [embeds(1, 20), prefix(3, 200)] },
    { id: 4, promptIds: [1, 80, 81, 82], adapters: [] },
  ]
  const { feed, state } = buildPrefill(shape, rows)
  t.same([feed.batch, feed.pastLen, feed.seqLen], [4, 3, 4], 'past: the longest prefix; sequence: the longest virtual + prompt')
  const ids = (r: number) => [...feed.inputIds.subarray(r * 4, r * 4 + 4)].map(Number)
  const positions = (r: number) => [...feed.positionIds.subarray(r * 4, r * 4 + 4)].map(Number)
  const mask = (r: number) => [...feed.attentionMask.subarray(r * 7, r * 7 + 7)].map(Number)
  const V = Number(VIRTUAL_TOKEN_ID)

  t.same([ids(0), positions(0).slice(1), mask(0)], [[0, 1, 50, 51], [2, 3, 4], [0, 1, 1, 0, 1, 1, 1]], 'prefix row: prompt at P…')
  t.same([ids(1), positions(1), mask(1)], [[V, V, 1, 60], [0, 1, 2, 3], [0, 0, 0, 1, 1, 1, 1]], 'prompt-tuning row: virtual 0…P-1, BOS at P')
  t.same([ids(2), positions(2).slice(1), mask(2)], [[0, V, 1, 70], [3, 4, 5], [1, 1, 1, 0, 1, 1, 1]], 'composed row: past 0…2, virtual 3, BOS 4')
  t.same([ids(3), positions(3), mask(3)], [[1, 80, 81, 82], [0, 1, 2, 3], [0, 0, 0, 1, 1, 1, 1]], 'bare row')
  t.same(state.nextPosition, [5, 4, 6, 4], 'decoding continues after the last real slot')

  const vector = (r: number, col: number) => [...feed.inputsEmbeds!.subarray((r * 4 + col) * HIDDEN, (r * 4 + col + 1) * HIDDEN)]
  t.same([vector(1, 0), vector(1, 1), vector(2, 1)], [[10, 10, 10], [11, 11, 11], [20, 20, 20]], 'each virtual token carries its own vector')
  t.same(vector(1, 2), [0, 0, 0], 'real tokens carry none')
  const pastKey = (r: number, slot: number) => feed.pastKeys[0][(r * 3 + slot) * 2]
  t.same([pastKey(0, 1), pastKey(0, 2), pastKey(2, 0), pastKey(2, 2)], [100, 101, 200, 202], 'prefixes right-aligned in the past')
})

t.test('a pass without virtual tokens carries no embeddings at all', async (t) => {
  const { feed } = buildPrefill(shape, [{ id: 1, promptIds: [1, 5], adapters: [prefix(1, 3)] }])
  t.equal(feed.inputsEmbeds, null)
  t.notOk([...feed.inputIds].some((id) => id < 0n))
})
