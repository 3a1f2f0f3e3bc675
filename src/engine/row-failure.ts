/**
 * What a request is told when its own row of a batch cannot be sampled. The
 * usual cause is a prefix whose values overflow the model (finite, but huge):
 * that is the prefix's fault, a 422 its owner can act on, never an engine
 * failure that would cut every other tenant's stream.
 */
import { flatError, flattenError, type FlatError } from '../domain/error-table.js'
import type { Generation } from './generation.js'
import { NonFiniteLogitsError } from './sampling/sampler.js'

export const NON_FINITE_PREFIX_MESSAGE = "the prefix makes the model's output non-finite"

export function rowFailure(g: Pick<Generation, 'adapters'>, err: unknown): FlatError {
  if (err instanceof NonFiniteLogitsError && g.adapters.length > 0) return flatError('PREFIXD_INVALID_PREFIX', NON_FINITE_PREFIX_MESSAGE)
  // The base model itself broke, or a bug: an internal error, whose message never reaches the client.
  return flattenError(err)
}
