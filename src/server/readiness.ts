/**
 * Who decides whether the server is ready: nobody alone. Each part that can
 * make it not ready (the engine, the drain on shutdown, the prefix index)
 * reports into this one registry how to tell; /ready asks it.
 */

declare module 'fastify' {
  interface FastifyInstance {
    readiness: Readiness
  }
}

/** null when the part is fine; otherwise why the server cannot serve. */
export type ReadinessCheck = () => string | null

export class Readiness {
  private readonly parts = new Map<string, ReadinessCheck>()

  /** A part reports in once; when several are not ready, the earliest reported part's reason is given. */
  report(part: string, check: ReadinessCheck): void {
    if (this.parts.has(part)) throw new Error(`readiness part '${part}' reported twice`)
    this.parts.set(part, check)
  }

  /** null when every part is ready; otherwise the first reason. */
  notReadyReason(): string | null {
    for (const check of this.parts.values()) {
      const reason = check()
      if (reason !== null) return reason
    }
    return null
  }
}
