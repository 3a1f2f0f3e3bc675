/**
 * Upload-time refusal of prefixes that cannot be served. NaN and ±Infinity are
 * refused when the tensors are decoded; this bound catches the finite values
 * that are still too large: a key of 3e38 overflows the attention scores
 * (q·k), a value of 3e38 overflows the next layer's RMS norm (x²), and the
 * request's logits come out NaN.
 *
 * The bound is the largest float16, 65504. It derives from the model as the
 * most conservative form it may be served in (optimum exports the same model
 * in float16 for GPUs, where any key or value beyond it is already Infinity);
 * in float32 it keeps q·k and x² at least 10^29 below overflow for every
 * head_dim and hidden size a model has. Trained prefixes hold values of the
 * size of the model's own keys and values, a few units to a few hundred. The
 * engine still guards each row at run time (engine-loop's stepRow): a prefix
 * that passes this bound and still overflows fails its own requests only.
 */
import { InvalidPrefixError } from '../errors.js'
import type { PrefixKV } from '../domain/prefix-kv.js'

export const MAX_PREFIX_ABS_VALUE = 65504

/** Throws InvalidPrefixError naming the first key or value beyond ±MAX_PREFIX_ABS_VALUE. */
export function assertServableMagnitude(prefix: Pick<PrefixKV, 'keys' | 'values'>, prefixId: string): void {
  for (const [kind, layers] of [['keys', prefix.keys], ['values', prefix.values]] as const) {
    layers.forEach((layer, i) => {
      for (let j = 0; j < layer.length; j++) {
        const x = layer[j]
        if (x > MAX_PREFIX_ABS_VALUE || x < -MAX_PREFIX_ABS_VALUE) {
          throw new InvalidPrefixError(
            `prefix '${prefixId}' cannot be served: ${kind}[${i}] holds ${x} at flat index ${j}; ` +
              `every key and value must lie within ±${MAX_PREFIX_ABS_VALUE} (the largest float16), beyond it the model's output is not finite`,
          )
        }
      }
    })
  }
}
