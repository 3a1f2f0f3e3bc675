/**
 * ADMISSION_WAIT_MS (StepLoop.setAdmissionWindow): an idle engine's first
 * request waits for others before the first pass, so that requests sent
 * together start as one prefill. (With 0, the default of the tests' engine
 * options, every other worker test runs the loop without a window.)
 */
import t from 'tap'
import { EngineClient } from '../../src/engine/engine-client.js'
import type { TokenEvent } from '../../src/engine/protocol.js'
import { engineOptions } from '../helpers/batching-models.js'
import { greedyParams } from '../helpers/engine-params.js'
import { generatedModel } from '../helpers/tiny-model.js'

function firstToken(engine: EngineClient, promptIds: number[]): { first: Promise<TokenEvent>; seen: () => boolean } {
  let seen = false
  const first = new Promise<TokenEvent>((resolve, reject) => {
    engine.submit(promptIds, [], greedyParams(3), {
      onToken: (e) => {
        if (!seen) resolve(e)
        seen = true
      },
      onError: reject,
    })
  })
  return { first, seen: () => seen }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('an idle engine holds its first request for the window, and a request arriving within it shares the prefill', async (t) => {
  const engine = await EngineClient.start({ ...engineOptions(await generatedModel('llama')), admissionWaitMs: 1000 })
  t.teardown(() => engine.close())
  const a = firstToken(engine, [5, 6, 7])
  // Well inside the window; a delay for the test to mean something, not a bound on anything.
  await pause(100)
  t.notOk(a.seen(), 'A is still held')
  const b = firstToken(engine, [8, 9])
  const [ea, eb] = await Promise.all([a.first, b.first])
  t.type(ea.admittedAt, 'number')
  t.equal(ea.admittedAt, eb.admittedAt, 'A and B were admitted by the same prefill pass')

  // Busy, the engine takes a newcomer at its next step without waiting: the window is for idle starts only.
  const c = firstToken(engine, [1, 2, 3, 4])
  const ec = await c.first
  t.ok(ec.admittedAt! > ea.admittedAt!, 'a later request got its own prefill')
})
