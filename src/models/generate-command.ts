import { parseArgs } from 'node:util'
import { generateModel, MODEL_ARCHS, MODEL_SIZES, type ModelArch, type ModelLayout, type ModelSize } from './generate/index.js'

export const MODEL_GENERATE_USAGE = `Usage: prefixd model generate --arch llama|gpt2 --size tiny|15m|110m --out DIR [--seed N]
                              [--dtype float32|float16] [--external-data] [--merged]

Writes a deterministic random-weight decoder in the Hugging Face optimum ONNX
layout (model.onnx, config.json, generation_config.json, tokenizer.json,
tokenizer_config.json). The same arguments always write the same bytes.

Options:
  --arch llama|gpt2        architecture: llama (RMSNorm, rotary, SwiGLU, tied head)
                           or gpt2 (LayerNorm, learned positions, GELU, tied head)
  --size tiny|15m|110m     tiny: hidden 64, 2 layers, vocab 512 (tests);
                           15m: the llama2.c stories15M shape, vocab 32000 (benchmarks);
                           110m: the stories110M / GPT-2 small shape (~0.5 GB)
  --out DIR                directory to write into (created if missing)
  --seed N                 weight seed, an integer 0..4294967295 (default 0)
  --dtype float32|float16  weights, key/values and logits (default float32)
  --external-data          weights in <model file>_data beside the graph
  --merged                 optimum 1.x's decoder_model_merged.onnx (use_cache_branch If)
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

interface GenerateArgs {
  arch: ModelArch
  size: ModelSize
  out: string
  seed: number
  layout: ModelLayout
}

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
  const arch = oneOf('arch', values.arch, MODEL_ARCHS)
  const size = oneOf('size', values.size, MODEL_SIZES)
  if (!values.out) throw new UsageError('missing --out DIR')
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
    await generateModel({ ...args, onProgress: (msg) => output.err(`${msg}\n`) })
    return 0
  } catch (error) {
    output.err(`prefixd model generate: ${(error as Error).message}\n`)
    return 1
  }
}
