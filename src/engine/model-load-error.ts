/**
 * The engine's one thrown error class: the model folder cannot be loaded
 * (missing file, bad config.json, a graph we cannot serve). A plain coded error
 * from the shared table, so the worker never loads the HTTP error catalog.
 */
import { CodedError, flatError } from '../domain/error-table.js'

export class ModelLoadError extends CodedError {
  constructor(message: string) {
    super(flatError('PREFIXD_MODEL_LOAD', message))
    this.name = 'ModelLoadError'
  }
}
