/**
 * Every prefixd metric, on one registry owned by the main thread (prom-client
 * registries do not cross threads: the engine worker sends its numbers as
 * messages and they are set here). Names start with prefixd_ and carry units.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { LabelGuard } from './label-guard.js'

/** Latency buckets from 1 ms to 2 min: token times and whole requests alike. */
const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

export interface RequestObservation {
  /** Prefix ids joined with '+' ('(base)' for the base model). */
  prefix: string
  /** The calling tenant ('anonymous' when the server runs without keys). */
  tenant: string
  outcome: string
  promptTokens: number
  generatedTokens: number
  durationS: number
  queueS?: number
  timeToFirstTokenS?: number
}

export class PrefixdMetrics {
  readonly registry = new Registry()
  private readonly guard: LabelGuard
  private readonly perPrefix: Array<Counter<string> | Histogram<string>>

  readonly requestDuration = this.histogram('prefixd_request_duration_seconds', 'Time from arrival to the last token, per prefix.')
  readonly timeToFirstToken = this.histogram('prefixd_time_to_first_token_seconds', 'Time from arrival to the first generated token, per prefix.')
  readonly timePerOutputToken = this.histogram('prefixd_time_per_output_token_seconds', 'Mean time between generated tokens after the first, per prefix.')
  readonly queueTime = this.histogram('prefixd_queue_time_seconds', 'Time from arrival to admission into the running batch, per prefix.')
  readonly requests = new Counter({ name: 'prefixd_requests_total', help: 'Generation requests by prefix and outcome (success, cancelled, or the error type).', labelNames: ['prefix', 'tenant', 'outcome'], registers: [this.registry] })
  readonly promptTokens = new Counter({ name: 'prefixd_prompt_tokens_total', help: 'Prompt tokens processed, per prefix and tenant.', labelNames: ['prefix', 'tenant'], registers: [this.registry] })
  readonly generatedTokens = new Counter({ name: 'prefixd_generated_tokens_total', help: 'Tokens generated, per prefix and tenant.', labelNames: ['prefix', 'tenant'], registers: [this.registry] })
  readonly running = this.gauge('prefixd_running_requests', 'Requests in the running batch.')
  readonly waiting = this.gauge('prefixd_waiting_requests', 'Requests waiting for a batch slot.')
  readonly batchSize = this.gauge('prefixd_batch_size', 'Rows in the last forward pass.')
  readonly cachedPrefixes = this.gauge('prefixd_prefix_cache_entries', 'Prefixes materialized in the engine cache.')
  readonly cacheBytes = this.gauge('prefixd_prefix_cache_bytes', 'Bytes of prefix key/values in the engine cache.')
  readonly cacheHits = new Counter({ name: 'prefixd_prefix_cache_hits_total', help: 'Prefix lookups served from the cache.', registers: [this.registry] })
  readonly cacheMisses = new Counter({ name: 'prefixd_prefix_cache_misses_total', help: 'Prefix lookups that had to load the prefix.', registers: [this.registry] })
  readonly cacheEvictions = new Counter({ name: 'prefixd_prefix_cache_evictions_total', help: 'Prefixes evicted from the cache to stay within its byte budget.', registers: [this.registry] })
  readonly indexDataLosses = new Counter({
    name: 'prefixd_prefix_index_data_losses_total',
    help: 'Times the prefix index (Redis) was found to have lost its data (came back empty or was flushed).',
    registers: [this.registry],
  })
  readonly uploads = new Counter({ name: 'prefixd_prefix_uploads_total', help: 'Prefix uploads and replacements by outcome.', labelNames: ['outcome'], registers: [this.registry] })

  constructor(prefixLabelLimit: number) {
    collectDefaultMetrics({ register: this.registry, prefix: 'prefixd_' })
    // prom-client names these gauges *_total, which Prometheus reserves for
    // counters (promtool rejects them); the same numbers remain without it.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(`prefixd_${name}`)
    }
    this.perPrefix = [this.requestDuration, this.timeToFirstToken, this.timePerOutputToken, this.queueTime, this.requests, this.promptTokens, this.generatedTokens]
    this.guard = new LabelGuard(prefixLabelLimit, (prefix) => {
      // prom-client removes a series by its full label set: drop every one seen.
      for (const key of this.seen.get(prefix) ?? []) {
        const [tenant, outcome] = JSON.parse(key) as [string, string]
        for (const m of this.perPrefix) m.remove({ prefix, tenant })
        this.requests.remove({ prefix, tenant, outcome })
      }
      this.seen.delete(prefix)
    })
  }

  /** prefix label → the [tenant, outcome] pairs it has series for. */
  private readonly seen = new Map<string, Set<string>>()

  observeRequest(o: RequestObservation): string {
    const prefix = this.guard.label(o.prefix)
    const tenant = o.tenant
    let pairs = this.seen.get(prefix)
    if (pairs === undefined) this.seen.set(prefix, (pairs = new Set()))
    pairs.add(JSON.stringify([tenant, o.outcome]))
    this.requests.inc({ prefix, tenant, outcome: o.outcome })
    this.promptTokens.inc({ prefix, tenant }, o.promptTokens)
    this.generatedTokens.inc({ prefix, tenant }, o.generatedTokens)
    if (o.outcome !== 'success') return prefix
    this.requestDuration.observe({ prefix, tenant }, o.durationS)
    if (o.queueS !== undefined) this.queueTime.observe({ prefix, tenant }, o.queueS)
    if (o.timeToFirstTokenS !== undefined) {
      this.timeToFirstToken.observe({ prefix, tenant }, o.timeToFirstTokenS)
      if (o.generatedTokens > 1) {
        this.timePerOutputToken.observe({ prefix, tenant }, (o.durationS - o.timeToFirstTokenS) / (o.generatedTokens - 1))
      }
    }
    return prefix
  }

  private readonly scrapeHooks: Array<() => void> = []

  /** Runs `fn` before every scrape, to set gauges that are cheaper to read than to track. */
  onScrape(fn: () => void): void {
    this.scrapeHooks.push(fn)
  }

  /** The exposition text, after the scrape hooks ran. */
  async scrape(): Promise<string> {
    for (const fn of this.scrapeHooks) fn()
    return this.registry.metrics()
  }

  /**
   * A deleted prefix's series go with it, and so do those of every composed
   * prefix that names it (`p1+p2` when p1 is deleted): ids never hold '+'.
   */
  forgetPrefix(prefixId: string): void {
    this.guard.forgetWhere((label) => label.split('+').includes(prefixId))
  }

  private histogram(name: string, help: string): Histogram<string> {
    return new Histogram({ name, help, labelNames: ['prefix', 'tenant'], buckets: SECONDS, registers: [this.registry] })
  }

  private gauge(name: string, help: string): Gauge<string> {
    return new Gauge({ name, help, registers: [this.registry] })
  }
}
