/**
 * Keeps what this replica remembers in step with the index: every change the
 * index announces (pub/sub, or this replica's own write) makes the engine
 * residency forget that id, and a periodic re-check of the index's change
 * counter catches any notice lost to a disconnect by re-reading every
 * remembered id.
 */
import type { EngineResidency } from './engine-residency.js'
import type { PrefixIndex } from './prefix-record.js'

export interface CoherenceLog {
  debug(obj: object, msg: string): void
}

export class IndexCoherence {
  private lastEpoch = -1
  private timer: NodeJS.Timeout | undefined

  private constructor(
    private readonly index: PrefixIndex,
    private readonly residency: EngineResidency,
    private readonly log: CoherenceLog,
  ) {}

  /**
   * Run before each re-check; true when the index was found to have lost its
   * data (then every remembered id is re-read). See index-data-loss.ts.
   */
  checkIntegrity: () => Promise<boolean> = async () => false

  static async start(index: PrefixIndex, residency: EngineResidency, recheckMs: number, log: CoherenceLog): Promise<IndexCoherence> {
    const coherence = new IndexCoherence(index, residency, log)
    index.watch({
      changed: (id) => residency.invalidate(id),
      resync: () => {
        coherence.lastEpoch = -1
        void coherence.recheck()
      },
    })
    coherence.lastEpoch = await index.epoch()
    coherence.timer = setInterval(() => void coherence.recheck(), recheckMs)
    coherence.timer.unref()
    return coherence
  }

  /** The safety net under pub/sub: when the index's change counter moved, re-read every remembered id. */
  async recheck(): Promise<void> {
    try {
      if (await this.checkIntegrity()) this.lastEpoch = -1
      const epoch = await this.index.epoch()
      if (epoch === this.lastEpoch) return
      const known = this.residency.remembered()
      const records = await this.index.getMany(known.map((k) => k.id))
      known.forEach((k, i) => {
        if (records[i]?.sha256 !== k.sha256) this.residency.invalidate(k.id)
      })
      this.lastEpoch = epoch
    } catch (err) {
      this.log.debug({ err }, 'prefix index re-check failed; will retry')
    }
  }

  stop(): void {
    clearInterval(this.timer)
  }
}
