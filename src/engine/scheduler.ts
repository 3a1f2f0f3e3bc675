/**
 * Iteration-level scheduling (as Orca and vLLM do it), pure: no ONNX Runtime,
 * no I/O, no clock. At every step boundary the scheduler admits as many
 * waiting requests as the budgets allow into the running set, and every
 * running request takes part in the step's decode pass. Requests leave the
 * moment they finish, so nobody waits for a whole batch to drain.
 *
 * Fair share: the next request admitted is the oldest one of the tenant that
 * has the fewest requests running (on a tie, the tenant served longest ago),
 * so a tenant flooding the queue takes turns with the others instead of going
 * first; and no tenant may hold more than its share of the waiting queue.
 *
 * Token budget: a request reserves its worst case (prefix + prompt +
 * max_new_tokens) on admission, so the running batch can never outgrow
 * maxBatchTokens and nothing ever has to be preempted.
 */
export interface SchedulerLimits {
  maxBatchSize: number
  maxBatchTokens: number
  maxPrefillTokens: number
  maxWaiting: number
  /** Most waiting requests of one tenant (defaults to maxWaiting). */
  maxWaitingPerTenant?: number
}

export interface Schedulable {
  id: number
  tenant: string
  /** Prefix + prompt tokens processed by the prefill pass. */
  prefillTokens: number
  /** Prefix + prompt + max_new_tokens: the most key/value positions it can hold. */
  maxTotalTokens: number
}

export interface StepPlan<T> {
  /** Newly admitted this step: they need a prefill pass (the running ones all decode). */
  admit: T[]
}

export class Scheduler<T extends Schedulable> {
  /** Arrival order of all waiting requests. */
  private readonly waiting: T[] = []
  private readonly running = new Map<number, T>()
  private readonly runningByTenant = new Map<string, number>()
  private readonly waitingByTenant = new Map<string, number>()
  private readonly lastAdmitted = new Map<string, number>()
  private admissions = 0
  private reservedTokens = 0

  constructor(private readonly limits: SchedulerLimits) {}

  get waitingCount(): number {
    return this.waiting.length
  }

  get runningCount(): number {
    return this.running.size
  }

  get idle(): boolean {
    return this.waiting.length === 0 && this.running.size === 0
  }

  /**
   * False when the waiting queue (or the tenant's share of it) is full: the
   * caller answers "overloaded". Requests that will take a free batch slot at
   * the next step do not count as waiting, even if they arrived in the same step.
   */
  enqueue(request: T): boolean {
    const freeSlots = Math.max(0, this.limits.maxBatchSize - this.running.size)
    if (this.waiting.length >= this.limits.maxWaiting + freeSlots) return false
    const perTenant = this.limits.maxWaitingPerTenant ?? this.limits.maxWaiting
    if ((this.waitingByTenant.get(request.tenant) ?? 0) >= perTenant + freeSlots) return false
    this.waiting.push(request)
    bump(this.waitingByTenant, request.tenant, 1)
    return true
  }

  /** Takes a request out wherever it is (finished, cancelled, expired). */
  remove(id: number): T | undefined {
    const running = this.running.get(id)
    if (running) {
      this.running.delete(id)
      bump(this.runningByTenant, running.tenant, -1)
      this.reservedTokens -= running.maxTotalTokens
      return running
    }
    const i = this.waiting.findIndex((r) => r.id === id)
    if (i < 0) return undefined
    const [request] = this.waiting.splice(i, 1)
    bump(this.waitingByTenant, request.tenant, -1)
    return request
  }

  waitingRequests(): readonly T[] {
    return this.waiting
  }

  /** The running request with this id, if it is running. */
  runningRequest(id: number): T | undefined {
    return this.running.get(id)
  }

  runningRequests(): IterableIterator<T> {
    return this.running.values()
  }

  nextStep(): StepPlan<T> {
    const admit: T[] = []
    let prefill = 0
    while (this.waiting.length > 0 && this.running.size < this.limits.maxBatchSize) {
      const i = this.fairestWaiting()
      const next = this.waiting[i]
      const overTokens = this.reservedTokens + next.maxTotalTokens > this.limits.maxBatchTokens
      const overPrefill = prefill + next.prefillTokens > this.limits.maxPrefillTokens
      // A request larger than a budget on its own still runs, alone: refusing it
      // forever would be worse, and the HTTP layer already bounds it by the model.
      if ((overTokens || overPrefill) && this.running.size > 0) break
      this.waiting.splice(i, 1)
      bump(this.waitingByTenant, next.tenant, -1)
      this.running.set(next.id, next)
      bump(this.runningByTenant, next.tenant, 1)
      this.lastAdmitted.set(next.tenant, ++this.admissions)
      this.reservedTokens += next.maxTotalTokens
      prefill += next.prefillTokens
      admit.push(next)
    }
    return { admit }
  }

  /**
   * Index of the oldest waiting request of the tenant with the fewest running,
   * ties going to the tenant admitted longest ago (round robin).
   */
  private fairestWaiting(): number {
    let best = 0
    let bestRunning = Infinity
    let bestServed = Infinity
    const seen = new Set<string>()
    for (let i = 0; i < this.waiting.length; i++) {
      const tenant = this.waiting[i].tenant
      if (seen.has(tenant)) continue // only each tenant's oldest request competes
      seen.add(tenant)
      const running = this.runningByTenant.get(tenant) ?? 0
      const served = this.lastAdmitted.get(tenant) ?? 0
      if (running < bestRunning || (running === bestRunning && served < bestServed)) {
        best = i
        bestRunning = running
        bestServed = served
      }
    }
    return best
  }
}

function bump(counts: Map<string, number>, key: string, by: number): void {
  const n = (counts.get(key) ?? 0) + by
  if (n === 0) counts.delete(key)
  else counts.set(key, n)
}
