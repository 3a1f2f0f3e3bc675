/**
 * Iteration-level scheduling (as Orca and vLLM do it), pure: no ONNX Runtime,
 * no I/O, no clock. Requests wait in FIFO order; at every step boundary the
 * scheduler admits as many as the budgets allow into the running set, and every
 * running request takes part in the step's decode pass. Requests leave the
 * moment they finish, so nobody waits for a whole batch to drain.
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
}

export interface Schedulable {
  id: number
  /** Prefix + prompt tokens processed by the prefill pass. */
  prefillTokens: number
  /** Prefix + prompt + max_new_tokens: the most key/value positions it can hold. */
  maxTotalTokens: number
}

export interface StepPlan<T> {
  /** Newly admitted this step: they need a prefill pass. */
  admit: T[]
  /** Running before this step: they need one decode pass. */
  decode: T[]
}

export class Scheduler<T extends Schedulable> {
  private readonly waiting: T[] = []
  private readonly running = new Map<number, T>()
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
   * False when the waiting queue is full: the caller answers "overloaded".
   * Requests that will take a free batch slot at the next step do not count
   * as waiting, even if they arrived in the same step.
   */
  enqueue(request: T): boolean {
    const freeSlots = Math.max(0, this.limits.maxBatchSize - this.running.size)
    if (this.waiting.length >= this.limits.maxWaiting + freeSlots) return false
    this.waiting.push(request)
    return true
  }

  /** Takes a request out wherever it is (finished, cancelled, expired). */
  remove(id: number): T | undefined {
    const running = this.running.get(id)
    if (running) {
      this.running.delete(id)
      this.reservedTokens -= running.maxTotalTokens
      return running
    }
    const i = this.waiting.findIndex((r) => r.id === id)
    return i >= 0 ? this.waiting.splice(i, 1)[0] : undefined
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
    const decode = [...this.running.values()]
    const admit: T[] = []
    let prefill = 0
    while (this.waiting.length > 0) {
      const next = this.waiting[0]
      const batchFull = this.running.size >= this.limits.maxBatchSize
      const overTokens = this.reservedTokens + next.maxTotalTokens > this.limits.maxBatchTokens
      const overPrefill = prefill + next.prefillTokens > this.limits.maxPrefillTokens
      // A request larger than a budget on its own still runs, alone: refusing it
      // forever would be worse, and the HTTP layer already bounds it by the model.
      const alone = this.running.size === 0
      if (batchFull || ((overTokens || overPrefill) && !alone)) break
      this.waiting.shift()
      this.running.set(next.id, next)
      this.reservedTokens += next.maxTotalTokens
      prefill += next.prefillTokens
      admit.push(next)
    }
    return { admit, decode }
  }
}
