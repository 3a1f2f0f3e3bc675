/**
 * Does a prefix fit the loaded model? A prefix trained for another model is a
 * well-formed file with the wrong shape; it is refused with every mismatch
 * named, so the tenant sees at once which model it was trained for.
 *
 * PEFT records `num_attention_heads` as the key/value heads for grouped-query
 * models, so a prefix's head count is compared with spec.numKvHeads, never
 * with the query heads.
 */
import type { ModelArchitecture, ModelSpec } from '../domain/model-spec.js'
import { PrefixShapeMismatchError } from '../errors.js'

/** What a shape check needs; a PrefixKV, a PEFT config or a native header all provide it. */
export interface PrefixShape {
  numLayers: number
  numKvHeads: number
  headDim: number
  numVirtualTokens: number
}

/** A spec without prefixRefusal (older callers, tools) is one that takes prefixes. */
type ModelShape = Pick<ModelSpec, 'numLayers' | 'numKvHeads' | 'headDim'> & Partial<Pick<ModelSpec, 'prefixRefusal'>>

function count(n: number, singular: string, plural: string): string {
  return `${n} ${n === 1 ? singular : plural}`
}

function subject(prefixId: string | undefined): string {
  return prefixId === undefined ? 'prefix' : `prefix '${prefixId}'`
}

/** Each way the prefix differs from the model, phrased "3 layers, the model has 5". */
export function prefixShapeMismatches(prefix: PrefixShape, spec: ModelShape): string[] {
  const out: string[] = []
  if (prefix.numLayers !== spec.numLayers) {
    out.push(`${count(prefix.numLayers, 'layer', 'layers')}, the model has ${spec.numLayers}`)
  }
  if (prefix.numKvHeads !== spec.numKvHeads) {
    out.push(`${count(prefix.numKvHeads, 'key/value head', 'key/value heads')}, the model has ${spec.numKvHeads}`)
  }
  if (prefix.headDim !== spec.headDim) {
    out.push(`head size ${prefix.headDim}, the model has ${spec.headDim}`)
  }
  return out
}

/**
 * Throws PrefixShapeMismatchError naming every mismatch, e.g.
 * "prefix 'x' has 3 layers, the model has 5; 2 key/value heads, the model has 4".
 */
export function assertPrefixFitsModel(prefix: PrefixShape, spec: ModelShape, prefixId?: string): void {
  // A family PEFT cannot build prefixes for: no prefix of any shape is the one PEFT would run.
  if (spec.prefixRefusal) throw new PrefixShapeMismatchError(`this model takes no prefixes: ${spec.prefixRefusal}`)
  const mismatches = prefixShapeMismatches(prefix, spec)
  if (mismatches.length > 0) {
    throw new PrefixShapeMismatchError(`${subject(prefixId)} has ${mismatches.join('; ')}`)
  }
}

/**
 * A prefix trained for a decoder-only model never fits an encoder-decoder one,
 * or the reverse, even when layers, heads and head size agree: PEFT maps
 * layers differently and the prefix sits in a different attention.
 */
export function assertArchitectureFits(prefix: ModelArchitecture, model: ModelArchitecture, prefixId?: string): void {
  if (prefix !== model) {
    const article = prefix === 'encoder-decoder' ? 'an' : 'a'
    throw new PrefixShapeMismatchError(`${subject(prefixId)} was trained for ${article} ${prefix} model; this server's model is ${model}`)
  }
}

export interface VirtualTokenLimits {
  /** Operator's cap on virtual tokens per prefix. */
  maxVirtualTokens: number
  /** The model's position budget (spec.maxPositions); the prefix must leave room for a real token. */
  maxPositions: number
}

/**
 * Refuses a prefix that is longer than the operator allows or that would leave
 * no position for the request's own tokens. Whether a given prompt plus its
 * generation still fits is checked per request, elsewhere.
 */
export function assertVirtualTokensFit(numVirtualTokens: number, limits: VirtualTokenLimits, prefixId?: string): void {
  if (numVirtualTokens > limits.maxVirtualTokens) {
    throw new PrefixShapeMismatchError(
      `${subject(prefixId)} has ${count(numVirtualTokens, 'virtual token', 'virtual tokens')}, ` +
        `more than the limit of ${limits.maxVirtualTokens}`,
    )
  }
  if (numVirtualTokens >= limits.maxPositions) {
    throw new PrefixShapeMismatchError(
      `${subject(prefixId)} has ${count(numVirtualTokens, 'virtual token', 'virtual tokens')}, ` +
        `leaving no room in the model's ${limits.maxPositions} positions`,
    )
  }
}
