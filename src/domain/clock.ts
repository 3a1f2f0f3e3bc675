/**
 * Milliseconds since the epoch with sub-millisecond precision, comparable
 * between the HTTP thread and the engine worker (each thread's
 * performance.now() has its own origin; timeOrigin + now does not).
 */
import { performance } from 'node:perf_hooks'

export function epochMs(): number {
  return performance.timeOrigin + performance.now()
}
