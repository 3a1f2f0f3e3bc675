/**
 * An index that lost its data (Redis restarted without persistence, or was
 * flushed) loses every uploaded prefix at once, on every replica. That must
 * never pass silently: it is logged at error, counted in a metric, /ready
 * answers 503 with the reason for a while (long enough for probes and alerts
 * to see it), and the folder prefixes, which this replica can rebuild, are
 * registered again at once.
 */

/** How many re-check periods /ready stays 503 after a loss (20 × 500 ms by default: 10 s). */
export const NOT_READY_PERIODS = 20

export const DATA_LOSS_REASON = 'the prefix index lost its data (Redis came back empty or was flushed): uploaded prefixes are gone'

export class DataLossAlarm {
  private raisedAt: number | null = null
  /** Losses seen since start. */
  count = 0

  constructor(private readonly holdMs: number) {}

  raise(now = Date.now()): void {
    this.raisedAt = now
    this.count++
  }

  /** The readiness reason while the alarm holds; null otherwise. */
  reason(now = Date.now()): string | null {
    return this.raisedAt !== null && now - this.raisedAt < this.holdMs ? DATA_LOSS_REASON : null
  }
}

export interface LostIndexRecovery {
  alarm: DataLossAlarm
  log: { error(obj: object, msg: string): void; info(obj: object, msg: string): void }
  /** Forget every id this replica remembers: none of them is in the index any more. */
  forgetAll(): void
  /** Register the folder prefixes again; how many were. */
  reseed(): Promise<number>
  /** Told once per loss (the metric). */
  onLoss(): void
}

export async function recoverLostIndex(r: LostIndexRecovery): Promise<void> {
  r.alarm.raise()
  r.onLoss()
  r.log.error({ losses: r.alarm.count }, `${DATA_LOSS_REASON}; registering the folder prefixes again`)
  r.forgetAll()
  const registered = await r.reseed()
  r.log.info({ registered }, 'prefix index: folder prefixes registered again after the data loss')
}
