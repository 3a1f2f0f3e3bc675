/**
 * fast-check generators of request mixes for the batching property: prompts of
 * different lengths, no prefix / one / two composed, random max_new_tokens,
 * and arrival points spread over the run.
 */
import fc from 'fast-check'
import type { RequestCase, SamplingChoice } from './batching-requests.js'

export interface MixSpace {
  vocabSize: number
  prefixKeys: readonly string[]
  /** LoRA keys: a request names at most one, before or after its prefixes. */
  loraKeys?: readonly string[]
  maxPromptTokens?: number
  maxNewTokens?: number
  maxRequests?: number
  /** Also draw seeded sampling requests (otherwise every request is greedy). */
  sampling?: boolean
}

const samplingArb: fc.Arbitrary<SamplingChoice> = fc.record({
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  temperature: fc.constantFrom(0.7, 1, 1.3),
  topK: fc.constantFrom(0, 5, 40),
  topP: fc.constantFrom(1, 0.9),
})

/** Up to two prefixes (possibly the same twice), and maybe one LoRA named first or last. */
function adapterKeysArb(prefix: fc.Arbitrary<string>, loraKeys: readonly string[]): fc.Arbitrary<string[]> {
  const prefixes = fc.array(prefix, { maxLength: 2 })
  if (loraKeys.length === 0) return prefixes
  return fc
    .tuple(prefixes, fc.option(fc.constantFrom(...loraKeys), { nil: undefined }), fc.boolean())
    .map(([p, lora, first]) => (lora === undefined ? p : first ? [lora, ...p] : [...p, lora]))
}

export function requestArb(space: MixSpace): fc.Arbitrary<RequestCase> {
  const token = fc.integer({ min: 0, max: space.vocabSize - 1 })
  const prefix = fc.constantFrom(...space.prefixKeys)
  return fc.record(
    {
      promptIds: fc.array(token, { minLength: 1, maxLength: space.maxPromptTokens ?? 20 }),
      // Two entries compose two prefixes (possibly the same one twice).
      prefixKeys: adapterKeysArb(prefix, space.loraKeys ?? []),
      maxNewTokens: fc.integer({ min: 1, max: space.maxNewTokens ?? 24 }),
      // Half arrive at once; the rest once that many tokens of the mix came back.
      arrivalAfter: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 60 })),
      // About one request in five goes away after a few tokens.
      cancelAfter: fc.oneof({ arbitrary: fc.constant(undefined), weight: 4 }, { arbitrary: fc.integer({ min: 1, max: 12 }), weight: 1 }),
      sampling: space.sampling ? fc.option(samplingArb, { nil: undefined }) : fc.constant(undefined),
    },
    { requiredKeys: ['promptIds', 'prefixKeys', 'maxNewTokens', 'arrivalAfter', 'cancelAfter'] },
  )
}

export function mixArb(space: MixSpace): fc.Arbitrary<RequestCase[]> {
  return fc.array(requestArb(space), { minLength: 2, maxLength: space.maxRequests ?? 8 })
}
