/**
 * ADMISSION_WAIT_MS (StepLoop.setAdmissionWindow): an idle engine's first
 * request waits while others keep arriving (a quiet slice with no arrival
 * ends the wait), at most the window, so that requests sent together start
 * as one prefill. The engine's own loop on a real model, in this thread; the
 * quiet slice is made long here so that the test's own pauses fit in it.
 */
import t from 'tap'
import { EngineLoop, type Forward } from '../../src/engine/engine-loop.js'
import { ForwardRunner } from '../../src/engine/forward-runner.js'
import { Generation } from '../../src/engine/generation.js'
import { loadModel } from '../../src/engine/loaded-model.js'
import type { TokenEvent } from '../../src/engine/protocol.js'
import { ENGINE_LIMITS } from '../helpers/batching-models.js'
import { greedyParams } from '../helpers/engine-params.js'
import { generatedModel } from '../helpers/tiny-model.js'

const model = await loadModel(await generatedModel('llama'), { executionProvider: 'cpu', intraOpThreads: 1 })
const { spec, tokenizer } = model
const shape = { numLayers: spec.numLayers, numKvHeads: spec.numKvHeads, headDim: spec.headDim }
const runner = new ForwardRunner(model.session, model.signature, shape, model.loraInputs)
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A loop whose sink keeps each request's first token; `forward` may wrap the runner. */
function engine(windowMs: number, quietMs: number, forward: Forward = runner) {
  const first = new Map<number, TokenEvent>()
  const loop = new EngineLoop(forward, shape, spec.vocabSize, ENGINE_LIMITS, {
    tokens: (events) => events.forEach((e) => first.has(e.id) || first.set(e.id, e)),
    failed: (id, error) => t.fail(`request ${id} failed: ${error.message}`),
    idle: () => {},
  })
  loop.setAdmissionWindow(windowMs, quietMs)
  const submit = (id: number, promptIds: number[], maxNewTokens = 2) =>
    loop.submit(new Generation(id, promptIds, [], greedyParams(maxNewTokens), spec.vocabSize, new Set(spec.eosTokenIds), tokenizer))
  return { loop, first, submit }
}

t.test('requests that keep arriving hold an idle engine, and share its first prefill', async (t) => {
  const { loop, first, submit } = engine(60_000, 400)
  submit(1, [5, 6, 7])
  await pause(100)
  submit(2, [8, 9])
  await pause(100)
  submit(3, [10])
  t.equal(first.size, 0, 'nothing has run while they kept arriving')
  await pause(1000)
  await loop.stop()
  t.equal(first.size, 3, 'all three got a token once arrivals stopped')
  const admitted = new Set([...first.values()].map((e) => e.admittedAt))
  t.equal(admitted.size, 1, 'all three were admitted by the same prefill pass')
})

t.test('a request with none arriving after it waits one quiet slice, not the window', async (t) => {
  const { loop, first, submit } = engine(60_000, 50)
  submit(1, [5, 6, 7])
  await pause(2000)
  await loop.stop()
  t.equal(first.size, 1, 'it ran long before a minute')
})

t.test('requests that arrive while the loop winds down its last batch are gathered too', async (t) => {
  // Request 1 takes one token: its prefill is the batch's last pass. Requests
  // 2 and 3 arrive during that pass and 100 ms later: the loop is still
  // running, with no row left once it ends, so it waits for them as an idle one would.
  let passes = 0
  const forward: Forward = {
    run: (feed) => {
      if (passes++ === 0) {
        submit(2, [8, 9])
        setTimeout(() => submit(3, [10]), 100)
      }
      return runner.run(feed)
    },
  }
  const { loop, first, submit } = engine(60_000, 400, forward)
  submit(1, [5, 6, 7], 1)
  await pause(2000)
  await loop.stop()
  t.equal(first.size, 3, 'all three got a token')
  t.not(first.get(2)!.admittedAt, first.get(1)!.admittedAt, 'request 1 ran alone')
  t.equal(first.get(2)!.admittedAt, first.get(3)!.admittedAt, 'requests 2 and 3 were admitted by the same prefill pass')
})

t.test('a loop asked to stop while it waits for arrivals starts no pass', async (t) => {
  let passes = 0
  const forward: Forward = { run: (feed) => (passes++, runner.run(feed)) }
  const { loop, first, submit } = engine(60_000, 400, forward)
  submit(1, [5, 6, 7])
  await pause(50)
  await loop.stop()
  t.equal(passes, 0, 'no forward pass ran')
  t.equal(first.size, 0, 'no token was produced')
})
