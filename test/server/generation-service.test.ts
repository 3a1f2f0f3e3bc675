/**
 * The generation service as a unit, on real parts (the stories260K engine
 * worker, its tokenizer, the prefix store with the two shipped prefixes),
 * without HTTP: how the TGI and OpenAI front ends translate their bodies into
 * a GenerationRequest, how prepare validates it once and fills the defaults,
 * how run reports every request once, however it ends, and how OpenAI's n
 * choices run side by side with their stop sequences cut off.
 */
import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { epochMs } from '../../src/domain/clock.js'
import { TextTokenizer } from '../../src/engine/tokenizer.js'
import { CHOSEN_TOKEN_LOGPROBS, fieldOf, type GenerationRequest, type LogprobRequest } from '../../src/server/generation-request.js'
import { GenerationService, OPEN_PRINCIPAL, type RequestReport } from '../../src/server/generation-service.js'
import { runChoices, type ChoicePiece } from '../../src/server/openai/choices.js'
import { prepareChoices, toGenerationRequest } from '../../src/server/openai/generate-request.js'
import { fromGenerateBody } from '../../src/server/tgi-request.js'
import type { TokenEvent } from '../../src/engine/protocol.js'
import { startApp } from '../helpers/app.js'
import { completionTexts } from '../helpers/completion-text.js'
import { readExpected, storiesModelDir, storiesPrefixesDir, storiesPrefixStore } from '../helpers/shared-data.js'

const limits = { MAX_INPUT_CHARS: 200, MAX_STOP_SEQUENCES: 2, DEFAULT_MAX_NEW_TOKENS: 3 }
const app = await startApp(t, storiesModelDir, { PREFIX_DIR: storiesPrefixStore(t), ...limits })
const tokenizer = await TextTokenizer.load(storiesModelDir, app.engine.spec.bosTokenId)
const reports: RequestReport[] = []
const service = new GenerationService(
  app.config,
  app.engine,
  // The model's own tokenizer, on this thread (the server moves long prompts to a worker).
  { encode: async (text) => tokenizer.encode(text) },
  { resolve: (id, principal) => app.prefixStore.resolve(id, principal) },
  (r) => reports.push(r),
)
const completionOf = await completionTexts(storiesModelDir)
const base = readExpected(join(storiesModelDir, 'expected-base.json'))
const dogMax = readExpected(join(storiesPrefixesDir, 'dog-max', 'expected.json'))
const maxPositions = app.engine.spec.maxPositions
/** Virtual tokens of a shipped prefix, as its PEFT config says. */
const virtualTokens = (id: string): number =>
  (JSON.parse(readFileSync(join(storiesPrefixesDir, id, 'adapter_config.json'), 'utf8')) as { num_virtual_tokens: number }).num_virtual_tokens
const silentLog = app.log

function request(over: Partial<GenerationRequest> = {}): GenerationRequest {
  return { inputs: base.cases[1].prompt, prefixIds: [], maxNewTokens: null, stop: [], sampling: { doSample: false }, logprobs: CHOSEN_TOKEN_LOGPROBS, ...over }
}

/** The error a promise rejects with (the test fails if it resolves). */
async function refusal(t: Test, p: Promise<unknown>): Promise<{ code?: string; statusCode?: number; message: string }> {
  try {
    await p
  } catch (err) {
    return err as { code?: string; statusCode?: number; message: string }
  }
  t.fail('expected a refusal')
  return { message: '' }
}

t.test('TGI bodies as generation requests', async (t) => {
  const bare = fromGenerateBody({ inputs: 'hi' }, false)
  t.same(bare, { inputs: 'hi', prefixIds: [], maxNewTokens: null, stop: [], sampling: { doSample: false }, logprobs: null })
  t.same(fromGenerateBody({ inputs: 'hi' }, true).logprobs, { top: 0, prompt: false }, "the route says whether logprobs are shown: TGI's are the chosen token's")

  const full = fromGenerateBody(
    { inputs: 'hi', parameters: { prefix_id: 'a', max_new_tokens: 9, stop: ['x'], seed: 3, repetition_penalty: 1.2, top_k: 4, temperature: 0.5, top_p: 0.9 } },
    true,
  )
  t.same(full.prefixIds, ['a'])
  t.equal(full.maxNewTokens, 9)
  t.same(full.stop, ['x'])
  t.match(full.sampling, { doSample: true, seed: 3, repetitionPenalty: 1.2, topK: 4, temperature: 0.5, topP: 0.9 })

  const ids = (parameters: object) => fromGenerateBody({ inputs: 'hi', parameters }, false).prefixIds
  t.same(ids({ prefix_id: ['a', 'b'] }), ['a', 'b'], 'a list composes in order')
  t.same(ids({ adapter_id: 'a' }), ['a'], "LoRAX's adapter_id names it too")
  t.same(ids({ prefix_id: 'a', adapter_id: 'a' }), ['a'], 'both, naming the same prefix')
  t.same(ids({ prefix_id: null, adapter_id: null }), [])
  t.throws(() => ids({ prefix_id: 'a', adapter_id: 'b' }), { code: 'PREFIXD_VALIDATION', statusCode: 422, message: /different prefixes/ })

  // TGI's rule: any active warper turns sampling on, whatever do_sample says.
  const sampling = (parameters: object) => fromGenerateBody({ inputs: 'hi', parameters }, false).sampling.doSample
  t.equal(sampling({ temperature: 0.7, do_sample: false }), true, 'temperature != 1')
  t.equal(sampling({ temperature: 1 }), false, 'temperature 1 is no warper')
  t.equal(sampling({ top_k: 5 }), true, 'top_k')
  t.equal(sampling({ top_p: 0.9 }), true, 'top_p < 1')
  t.equal(sampling({ top_p: 1 }), false, 'top_p 1 is no warper')
  t.equal(sampling({ repetition_penalty: 1.3 }), false, 'a penalty is no warper')
  t.equal(sampling({ do_sample: true }), true, 'asked for')
})

t.test('OpenAI bodies as generation requests', async (t) => {
  const make = (body: object, logprobs: LogprobRequest | null = null) => toGenerationRequest(app, { model: app.modelId, ...body }, 'the prompt', 7, logprobs)
  t.same(make({}), {
    inputs: 'the prompt',
    prefixIds: [],
    maxNewTokens: 7,
    stop: [],
    sampling: { doSample: true, seed: undefined, temperature: 1, topP: undefined },
    logprobs: null,
  }, "the base model's own name means no prefix; OpenAI samples at temperature 1 by default")
  t.same(make({ model: 'dog-max' }).prefixIds, ['dog-max'], 'any other model name is a prefix id')
  t.same(make({}, { top: 3, prompt: true }).logprobs, { top: 3, prompt: true })
  t.same(make({ temperature: 0, top_p: 0.5, seed: 4 }).sampling, { doSample: false, seed: 4 }, 'temperature 0 is greedy; top_p is moot')
  t.same(make({ temperature: 0.3, top_p: 0.5 }).sampling, { doSample: true, seed: undefined, temperature: 0.3, topP: 0.5 })
  t.equal(make({ top_p: 1 }).sampling.topP, undefined, 'top_p 1 is off')
  t.same(make({ stop: 'x' }).stop, ['x'], 'one stop string')
  t.same(make({ stop: ['x', 'y'] }).stop, ['x', 'y'])
  t.same(make({ stop: null }).stop, [])

  // n choices: one validation, then seeds seed, seed + 1, ... wrapping below 2^53.
  const choices = await prepareChoices(app, OPEN_PRINCIPAL, request({ sampling: { doSample: true, seed: 10 } }), 3)
  t.same(choices.map((c) => c.params.seed), [10, 11, 12])
  t.ok(choices.every((c) => c.promptIds === choices[0].promptIds), 'the prompt is encoded once')
  const top = Number.MAX_SAFE_INTEGER
  const wrapped = await prepareChoices(app, OPEN_PRINCIPAL, request({ sampling: { doSample: true, seed: top - 1 } }), 3)
  t.same(wrapped.map((c) => c.params.seed), [top - 1, 0, 1])
})

t.test('prepare: defaults, prefixes, and one validation', async (t) => {
  // arrivedAt reads epochMs (monotonic, sub-millisecond), the deadline the wall
  // clock (whole ms, and slewed or stepped on a VM): the two can disagree by
  // more than a millisecond, so each is bracketed by its own clock.
  const before = Date.now()
  const beforeEpoch = epochMs()
  const plain = await service.prepare(request())
  const afterEpoch = epochMs()
  const after = Date.now()
  t.same(plain.promptIds, base.cases[1].prompt_ids, "the model's own tokenization, with BOS")
  t.same(plain.prefixes, [])
  t.match(plain.params, { maxNewTokens: limits.DEFAULT_MAX_NEW_TOKENS, stop: [], doSample: false, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 })
  t.equal(plain.params.tenant, OPEN_PRINCIPAL.tenant, 'without authentication everyone is one tenant')
  t.equal(plain.params.logprobs, true)
  t.ok(Number.isSafeInteger(plain.params.seed) && plain.params.seed >= 0, 'a seed is drawn when none is given')
  t.ok(plain.params.deadline >= before + app.config.REQUEST_TIMEOUT_MS && plain.params.deadline <= after + app.config.REQUEST_TIMEOUT_MS)
  t.ok(plain.arrivedAt >= beforeEpoch && plain.arrivedAt <= afterEpoch, 'arrival is stamped inside the call')

  const tuned = await service.prepare(
    request({ maxNewTokens: 5, stop: ['.', '!'], sampling: { doSample: true, seed: 7, temperature: 0.5, topK: 4, topP: 0.9, repetitionPenalty: 1.1 }, logprobs: null }),
    { tenant: 'alice', role: 'tenant' },
  )
  t.match(tuned.params, { maxNewTokens: 5, stop: ['.', '!'], doSample: true, seed: 7, temperature: 0.5, topK: 4, topP: 0.9, repetitionPenalty: 1.1, logprobs: false, tenant: 'alice' })
  t.notOk('topLogprobs' in tuned.params || 'promptLogprobs' in tuned.params, 'no logprobs: nothing more to score')
  const scored = await service.prepare(request({ logprobs: { top: 3, prompt: true } }))
  t.match(scored.params, { logprobs: true, topLogprobs: 3, promptLogprobs: true })
  t.match(plain.params, { topLogprobs: 0, promptLogprobs: false })

  const composed = await service.prepare(request({ prefixIds: ['robot-benny', 'dog-max'] }))
  t.same(composed.prefixes.map((p) => p.id), ['robot-benny', 'dog-max'], 'resolved in the order given')
  t.same(composed.prefixes.map((p) => p.numVirtualTokens), [virtualTokens('robot-benny'), virtualTokens('dog-max')])
  t.ok(composed.prefixes.every((p) => /^[0-9a-f]{64}$/.test(p.key)), "each key is its version's sha256")
  t.not(composed.prefixes[0].key, composed.prefixes[1].key)
  t.match(await refusal(t, service.prepare(request({ prefixIds: ['no-such-prefix'] }))), { code: 'PREFIXD_PREFIX_NOT_FOUND', statusCode: 404 })

  const longInput = await refusal(t, service.prepare(request({ inputs: 'x'.repeat(limits.MAX_INPUT_CHARS + 1) })))
  t.match(longInput, { code: 'PREFIXD_VALIDATION', statusCode: 422, message: /201 characters long; the limit is 200/ })
  t.equal(fieldOf(longInput), 'inputs', 'the refusal says which field')
  t.ok(await service.prepare(request({ inputs: 'x'.repeat(limits.MAX_INPUT_CHARS) })), 'exactly the limit is accepted')

  const manyStops = await refusal(t, service.prepare(request({ stop: ['a', 'b', 'c'] })))
  t.match(manyStops, { code: 'PREFIXD_VALIDATION', statusCode: 422, message: /3 sequences; the limit is 2/ })
  t.equal(fieldOf(manyStops), 'stop')
  t.equal(fieldOf(new Error('plain')), undefined)

  // The position budget: prefix + prompt + max_new_tokens within the model's positions.
  const promptLen = plain.promptIds.length
  const fits = maxPositions - promptLen
  t.equal((await service.prepare(request({ maxNewTokens: fits }))).params.maxNewTokens, fits, 'the last position is usable')
  const over = await refusal(t, service.prepare(request({ maxNewTokens: fits + 1 })))
  t.match(over, { code: 'PREFIXD_PROMPT_TOO_LONG', statusCode: 422 })
  t.match(over.message, `prefix (0) + prompt (${promptLen} tokens) + max_new_tokens (${fits + 1}) = ${maxPositions + 1} exceeds the model's ${maxPositions} positions`)
  const P = virtualTokens('dog-max')
  const withPrefix = await refusal(t, service.prepare(request({ prefixIds: ['dog-max'], maxNewTokens: fits })))
  t.match(withPrefix, { code: 'PREFIXD_PROMPT_TOO_LONG', message: new RegExp(`^prefix \\(${P}\\)`) }, "a prefix's virtual tokens take positions")
  t.ok(await service.prepare(request({ prefixIds: ['dog-max'], maxNewTokens: fits - P })))
})

t.test('run: the tokens, the timings, and one report per request', async (t) => {
  const c = base.cases[1]
  const prepared = await service.prepare(request({ maxNewTokens: c.generated_ids.length }))
  const seen: TokenEvent[] = []
  const inFlight: number[] = []
  const reported = reports.length
  const result = await service.run(prepared, new AbortController().signal, silentLog, (e) => {
    seen.push(e)
    inFlight.push(service.inFlight)
  })
  t.same(result.tokens.map((x) => x.id), c.generated_ids, 'greedy tokens as transformers generates them')
  t.equal(result.generatedText, completionOf(c), 'decode(prompt + generated) minus decode(prompt)')
  t.equal(result.finishReason, 'length')
  t.same(seen.map((e) => e.token), result.tokens, 'onToken saw every token, in order')
  t.ok(inFlight.every((n) => n === 1), 'in flight while it runs')
  t.equal(service.inFlight, 0, 'and not after')
  t.ok(result.tokens.every((x) => Number.isFinite(x.logprob) && x.logprob <= 0), 'logprobs were asked for')
  const { timings } = result
  t.ok(timings.admittedAt !== undefined && timings.firstTokenAt !== undefined)
  t.ok(timings.arrivedAt <= timings.admittedAt! && timings.admittedAt! <= timings.firstTokenAt! && timings.firstTokenAt! <= timings.finishedAt)
  t.equal(reports.length, reported + 1, 'reported once')
  t.match(reports.at(-1), {
    tenant: OPEN_PRINCIPAL.tenant,
    prefixIds: [],
    promptTokens: c.prompt_ids.length,
    generatedTokens: c.generated_ids.length,
    outcome: 'success',
    finishReason: 'length',
  })
  t.equal(reports.at(-1)!.timings, timings)

  // The prefix reaches the engine: PEFT's own greedy tokens with dog-max.
  const d = dogMax.cases[0]
  const steered = await service.prepare(request({ inputs: d.prompt, prefixIds: ['dog-max'], maxNewTokens: d.generated_ids.length, logprobs: null }))
  t.same(steered.promptIds, d.prompt_ids)
  const steeredResult = await service.run(steered, new AbortController().signal, silentLog)
  t.same(steeredResult.tokens.map((x) => x.id), d.generated_ids)
  t.ok(steeredResult.tokens.every((x) => Number.isNaN(x.logprob)), 'no logprob is computed when the request does not want them')
  t.match(reports.at(-1), { prefixIds: ['dog-max'], outcome: 'success' })

  // What logprobs the request wants reaches the engine: alternatives per token, the prompt scored.
  const scored = await service.prepare(request({ maxNewTokens: 2, logprobs: { top: 2, prompt: true } }))
  const scoredEvents: TokenEvent[] = []
  const scoredResult = await service.run(scored, new AbortController().signal, silentLog, (e) => scoredEvents.push(e))
  t.same(scoredEvents[0].prompt?.map((p) => p.id), scored.promptIds, 'the first event scores the prompt')
  t.equal(scoredEvents[0].prompt?.[0].logprob, null, 'nothing predicts the first prompt token')
  t.ok(scoredResult.tokens.every((x) => x.top?.length === 2), 'two alternatives per token')
})

t.test('run: a client that goes away, and an engine error', async (t) => {
  const prepared = await service.prepare(request({ maxNewTokens: 100 }))
  const gone = new AbortController()
  let tokens = 0
  const cancelled = await refusal(
    t,
    service.run(prepared, gone.signal, silentLog, () => {
      tokens++
      gone.abort()
    }),
  )
  t.match(cancelled, { code: 'PREFIXD_CANCELLED', statusCode: 499 })
  t.equal(service.inFlight, 0)
  t.match(reports.at(-1), { outcome: 'cancelled', generatedTokens: tokens })
  t.equal(reports.filter((r) => r.outcome === 'cancelled').length, 1, 'reported once, though the engine may still have sent tokens')

  // A request past its deadline fails in the engine; the report names the error type.
  const late = await service.prepare(request())
  const expired = await refusal(t, service.run({ ...late, params: { ...late.params, deadline: Date.now() - 1 } }, new AbortController().signal, silentLog))
  t.match(expired, { code: 'PREFIXD_DEADLINE_EXCEEDED', statusCode: 504 })
  t.match(reports.at(-1), { outcome: 'deadline_exceeded', generatedTokens: 0 })
  t.equal(service.inFlight, 0)
})

t.test("OpenAI's choices: side by side, the stop sequence cut off, one failure ends them all", async (t) => {
  const c = base.cases[1]
  const completion = completionOf(c)
  // A stop sequence from the middle of the greedy completion: the answer is the text before it.
  const stop = ` ${completion.trim().split(' ')[3]}`
  const cut = completion.indexOf(stop)
  t.ok(cut > 0, `'${stop}' occurs in the completion`)
  const choices = await prepareChoices(app, OPEN_PRINCIPAL, request({ maxNewTokens: c.generated_ids.length, stop: [stop] }), 2)
  const pieces: ChoicePiece[] = []
  const results = await runChoices(service, silentLog, choices, new AbortController().signal, (p) => pieces.push(p))
  t.same(results.map((r) => r.index), [0, 1])
  for (const r of results) {
    t.equal(r.text, completion.slice(0, cut), `choice ${r.index}: OpenAI cuts the stop sequence off`)
    t.equal(r.finishReason, 'stop')
    const streamed = pieces.filter((p) => p.index === r.index)
    t.equal(streamed.map((p) => p.text).join(''), r.text, 'the streamed pieces add up to the text')
    t.same(streamed.map((p) => p.token), r.tokens, 'one piece per token')
    t.equal(streamed.at(-1)!.finishReason, 'stop', 'the last piece says how it finished')
    t.ok(streamed.slice(0, -1).every((p) => p.finishReason === undefined))
  }

  const short = await prepareChoices(app, OPEN_PRINCIPAL, request({ maxNewTokens: 3 }), 1)
  const [length] = await runChoices(service, silentLog, short, new AbortController().signal)
  t.equal(length.finishReason, 'length')
  t.equal(length.text, completionOf({ prompt_ids: c.prompt_ids, generated_ids: c.generated_ids.slice(0, 3) }))

  // A choice that fails cancels its sibling: the answer has failed anyway.
  const [good] = await prepareChoices(app, OPEN_PRINCIPAL, request({ maxNewTokens: 100 }), 1)
  const [late] = await prepareChoices(app, OPEN_PRINCIPAL, request(), 1)
  const expired = { ...late, params: { ...late.params, deadline: Date.now() - 1 } }
  const before = reports.length
  t.match(await refusal(t, runChoices(service, silentLog, [good, expired], new AbortController().signal)), { code: 'PREFIXD_DEADLINE_EXCEEDED' })
  t.same(reports.slice(before).map((r) => r.outcome).sort(), ['cancelled', 'deadline_exceeded'])

  // The client going away cancels every choice.
  const gone = new AbortController()
  const both = await prepareChoices(app, OPEN_PRINCIPAL, request({ maxNewTokens: 100, sampling: { doSample: true, seed: 1 } }), 2)
  const from = reports.length
  t.match(await refusal(t, runChoices(service, silentLog, both, gone.signal, () => gone.abort())), { code: 'PREFIXD_CANCELLED' })
  t.same(reports.slice(from).map((r) => r.outcome), ['cancelled', 'cancelled'])
  t.equal(service.inFlight, 0)
})
