import { parseArgs } from 'node:util'
import { generateModel, MODEL_ARCHS, MODEL_SIZES, type ModelArch, type ModelLayout, type ModelSize } from './generate/index.js'
import { SEQ2SEQ_ARCHS, SEQ2SEQ_SIZES, type Seq2seqArch, type Seq2seqSize } from './generate/seq2seq/seq2seq-dims.js'
import { generateSeq2seqModel } from './generate/seq2seq/seq2seq-directory.js'

export const MODEL_GENERATE_USAGE = `Usage: prefixd model generate --arch llama|gpt2 --size tiny|15m|110m --out DIR [--seed N]
                              [--dtype float32|float16] [--external-data] [--merged]
       prefixd model generate --arch bart|t5 --size tiny|bench --out DIR [--seed N]

Writes a deterministic random-weight model in the Hugging Face optimum ONNX
layout: a decoder (model.onnx) or, for bart and t5, an encoder-decoder
(encoder_model.onnx, decoder_model.onnx, decoder_with_past_model.onnx), with
config.json, generation_config.json, tokenizer.json and tokenizer_config.json.
The same arguments always write the same bytes.

Options:
  --arch llama|gpt2        architecture: llama (RMSNorm, rotary, SwiGLU, tied head)
                           or gpt2 (LayerNorm, learned positions, GELU, tied head);
                           bart or t5 (encoder-decoder; separate output head)
  --size SIZE              llama, gpt2: tiny|15m|110m; bart, t5: tiny|bench
                           tiny: hidden 64, 2 layers, vocab 512 (tests);
                           15m: the llama2.c stories15M shape, vocab 32000 (benchmarks);
                           110m: the stories110M / GPT-2 small shape (~0.5 GB);
                           bench: d_model 256, 4 + 4 layers, vocab 8192 (seq2seq bench)
  --out DIR                directory to write into (created if missing)
  --seed N                 weight seed, an integer 0..4294967295 (default 0)
  --dtype float32|float16  weights, key/values and logits (default float32)
  --external-data          weights in <model file>_data beside the graph
  --merged                 optimum 1.x's decoder_model_merged.onnx (use_cache_branch If)
                           (--dtype, --external-data, --merged: llama and gpt2 only)
  -h, --help               show this help
`

/** What the command writes; a parameter so tests can capture it. */
export interface CommandOutput {
  out: (text: string) => void
  err: (text: string) => void
}

const processOutput: CommandOutput = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
}

class UsageError extends Error {}

type GenerateArgs =
  | { arch: ModelArch; size: ModelSize; out: string; seed: number; layout: ModelLayout }
  | { arch: Seq2seqArch; size: Seq2seqSize; out: string; seed: number }

const isSeq2seqArch = (arch: string): arch is Seq2seqArch => (SEQ2SEQ_ARCHS as readonly string[]).includes(arch)

function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[]): T {
  if (value === undefined) throw new UsageError(`missing --${flag} (one of ${allowed.join(', ')})`)
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${flag} must be one of ${allowed.join(', ')}, got '${value}'`)
  return value as T
}

function parseSeed(value: string | undefined): number {
  if (value === undefined) return 0
  if (!/^\d+$/.test(value) || Number(value) > 0xffffffff) throw new UsageError(`--seed must be an integer from 0 to 4294967295, got '${value}'`)
  return Number(value)
}

function parseGenerateArgs(argv: string[]): GenerateArgs | 'help' {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        arch: { type: 'string' },
        size: { type: 'string' },
        out: { type: 'string' },
        seed: { type: 'string' },
        dtype: { type: 'string' },
        'external-data': { type: 'boolean' },
        merged: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }))
  } catch (error) {
    // node:util's messages name the offending flag ("Unknown option '--foo'").
    throw new UsageError((error as Error).message)
  }
  if (values.help) return 'help'
  const arch = oneOf('arch', values.arch, [...MODEL_ARCHS, ...SEQ2SEQ_ARCHS])
  if (!values.out) throw new UsageError('missing --out DIR')
  if (isSeq2seqArch(arch)) {
    const decoderOnly = (['dtype', 'external-data', 'merged'] as const).filter((flag) => values[flag] !== undefined)
    if (decoderOnly.length > 0) throw new UsageError(`--${decoderOnly[0]} is for llama and gpt2, not ${arch}`)
    return { arch, size: oneOf('size', values.size, SEQ2SEQ_SIZES), out: values.out, seed: parseSeed(values.seed) }
  }
  const size = oneOf('size', values.size, MODEL_SIZES)
  const layout: ModelLayout = {
    dtype: values.dtype === undefined ? 'float32' : oneOf('dtype', values.dtype, ['float32', 'float16'] as const),
    externalData: values['external-data'] === true,
    merged: values.merged === true,
  }
  return { arch, size, out: values.out, seed: parseSeed(values.seed), layout }
}

/**
 * `prefixd model generate`: 0 on success, 2 on bad arguments (the message
 * names the flag), 1 when writing fails. Progress goes to stderr.
 */
export async function runModelGenerate(argv: string[], output: CommandOutput = processOutput): Promise<number> {
  let args: GenerateArgs | 'help'
  try {
    args = parseGenerateArgs(argv)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    output.err(`prefixd model generate: ${error.message}\n\n${MODEL_GENERATE_USAGE}`)
    return 2
  }
  if (args === 'help') {
    output.out(MODEL_GENERATE_USAGE)
    return 0
  }
  try {
    const onProgress = (msg: string) => output.err(`${msg}\n`)
    if ('layout' in args) await generateModel({ ...args, onProgress })
    else await generateSeq2seqModel({ ...args, onProgress })
    return 0
  } catch (error) {
    output.err(`prefixd model generate: ${(error as Error).message}\n`)
    return 1
  }
}
