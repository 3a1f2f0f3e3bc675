/**
 * The pure scheduler: budgets, admission order, and the fair share between
 * tenants, without a model.
 */
import t from 'tap'
import { Scheduler, type Schedulable } from '../../src/engine/scheduler.js'

let nextId = 1
const req = (tenant: string, prefillTokens = 10, maxTotalTokens = 50): Schedulable => ({ id: nextId++, tenant, prefillTokens, maxTotalTokens })
const limits = { maxBatchSize: 4, maxBatchTokens: 1000, maxPrefillTokens: 100, maxWaiting: 8 }

t.test('admits within batch size, token and prefill budgets; FIFO within a tenant', async (t) => {
  const s = new Scheduler({ ...limits, maxBatchTokens: 120, maxPrefillTokens: 25 })
  const [a, b, c] = [req('x'), req('x'), req('x')]
  for (const r of [a, b, c]) t.ok(s.enqueue(r))
  t.equal(s.runningCount, 0)
  const first = s.nextStep()
  t.same(first.admit.map((r) => r.id), [a.id, b.id], 'prefill budget 25 takes two of 10')
  const second = s.nextStep()
  t.same(second.admit, [], 'token budget 120 holds two reservations of 50')
  t.same([...s.runningRequests()].map((r) => r.id), [a.id, b.id])
  s.remove(a.id)
  t.same(s.nextStep().admit.map((r) => r.id), [c.id], 'a finished request frees its reservation')
  const big = req('x', 500, 5000)
  const lone = new Scheduler(limits)
  lone.enqueue(big)
  t.same(lone.nextStep().admit.map((r) => r.id), [big.id], 'a request over every budget still runs alone')
})

t.test('a full queue refuses; free batch slots do not count as waiting', async (t) => {
  const s = new Scheduler({ ...limits, maxBatchSize: 1, maxWaiting: 1 })
  t.ok(s.enqueue(req('x')), 'takes the free slot')
  t.ok(s.enqueue(req('x')), 'waits')
  t.notOk(s.enqueue(req('x')), 'queue full')
  const p = new Scheduler({ ...limits, maxBatchSize: 1, maxWaiting: 10, maxWaitingPerTenant: 2 })
  for (let i = 0; i < 3; i++) t.ok(p.enqueue(req('heavy')))
  t.notOk(p.enqueue(req('heavy')), "the heavy tenant's share is full")
  t.ok(p.enqueue(req('light')), 'another tenant still gets in')
})

t.test('fair share: a flooding tenant takes turns with a light one', async (t) => {
  const s = new Scheduler({ ...limits, maxBatchSize: 2, maxWaiting: 100 })
  const heavy = Array.from({ length: 10 }, () => req('heavy'))
  for (const r of heavy) s.enqueue(r)
  t.same(s.nextStep().admit.map((r) => r.tenant), ['heavy', 'heavy'])
  const light = req('light')
  s.enqueue(light)
  s.remove(heavy[0].id)
  t.same(s.nextStep().admit.map((r) => r.id), [light.id], 'the light request goes before nine older heavy ones')
  s.remove(light.id)
  s.remove(heavy[1].id)
  const light2 = req('light')
  s.enqueue(light2)
  const next = s.nextStep().admit.map((r) => r.tenant)
  t.same(next.sort(), ['heavy', 'light'], 'two free slots: one each')
  t.equal(s.waitingCount, 7)
})
