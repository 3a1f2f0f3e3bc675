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
import type { AdapterContribution } from '../domain/adapter-contribution.js'
import { InvalidPrefixError } from '../errors.js'

export const MAX_PREFIX_ABS_VALUE = 65504

/** The float tensors of a contribution, named as error messages name them. */
function tensorsOf(c: AdapterContribution): Array<[string, Float32Array]> {
  switch (c.kind) {
    case 'past_kv':
      return [...c.prefix.keys.map((k, i): [string, Float32Array] => [`keys[${i}]`, k]), ...c.prefix.values.map((v, i): [string, Float32Array] => [`values[${i}]`, v])]
    case 'input_embeds':
      return [['embeddings', c.embeds.values]]
  }
}

/** Throws InvalidPrefixError naming the first value beyond ±MAX_PREFIX_ABS_VALUE (keys, values, or virtual-token embeddings). */
export function assertServableMagnitude(contribution: AdapterContribution, prefixId: string): void {
  for (const [name, values] of tensorsOf(contribution)) {
    for (let j = 0; j < values.length; j++) {
      const x = values[j]
      if (x > MAX_PREFIX_ABS_VALUE || x < -MAX_PREFIX_ABS_VALUE) {
        throw new InvalidPrefixError(
          `prefix '${prefixId}' cannot be served: ${name} holds ${x} at flat index ${j}; ` +
            `every value must lie within ±${MAX_PREFIX_ABS_VALUE} (the largest float16), beyond it the model's output is not finite`,
        )
      }
    }
  }
}
