/**
 * Every decoder family of the zoo (test/fixtures/zoo: optimum's exports as
 * they are, PEFT prefix adapters, transformers' and PEFT's own greedy ids)
 * served over HTTP: the adapter is uploaded through the API, then base and
 * adapter ids are compared one request at a time and with every request at
 * once. This file: the common families; zoo-special.test.ts: the families
 * that need something of prefixd (derived positions, other config names,
 * refused prefixes, int8); batching-families.test.ts: random batching mixes.
 */
import t from 'tap'
import { checkFloatFamily, type FamilyFacts } from '../helpers/zoo.js'

const COMMON_FAMILIES: Record<string, FamilyFacts> = {
  gpt2: { positions: false, kvHeads: 4 },
  opt: { positions: false, kvHeads: 4 },
  gpt_neox: { positions: false, kvHeads: 4 },
  phi3: { positions: false, kvHeads: 4 },
  qwen2: { positions: false, kvHeads: 2 },
}

for (const [family, facts] of Object.entries(COMMON_FAMILIES)) {
  t.test(`${family}: PEFT's and transformers' ids, alone and all at once`, (t) => checkFloatFamily(t, family, facts))
}
