import t from 'tap'
import { Readiness } from '../../src/server/readiness.js'

t.test('ready only while every part reporting in is; the earliest part that is not names the reason', async (t) => {
  const readiness = new Readiness()
  t.equal(readiness.notReadyReason(), null, 'no part: ready')
  let engineDead = false
  let indexDown = false
  readiness.report('engine', () => (engineDead ? 'engine gone' : null))
  readiness.report('index', () => (indexDown ? 'index gone' : null))
  t.equal(readiness.notReadyReason(), null)
  indexDown = true
  t.equal(readiness.notReadyReason(), 'index gone')
  engineDead = true
  t.equal(readiness.notReadyReason(), 'engine gone', 'the engine reported first')
  indexDown = false
  engineDead = false
  t.equal(readiness.notReadyReason(), null, 'asked afresh each time')
})

t.test('a part reports in once', async (t) => {
  const readiness = new Readiness()
  readiness.report('drain', () => null)
  t.throws(() => readiness.report('drain', () => 'again'), /reported twice/)
})
