/**
 * The model's tokenizer, loaded offline from tokenizer.json with
 * @huggingface/tokenizers. BOS handling follows tokenizer_config.json's
 * `add_bos_token` when it says so explicitly (Llama exports rely on it), else
 * tokenizer.json's own post-processor.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Tokenizer } from '@huggingface/tokenizers'
import { ModelLoadError } from './model-load-error.js'

export class TextTokenizer {
  private readonly specialIds: Set<number>

  private constructor(
    private readonly tokenizer: Tokenizer,
    private readonly addBos: boolean | undefined,
    private readonly bosId: number | null,
  ) {
    this.specialIds = new Set(tokenizer.get_added_tokens_decoder().keys())
  }

  static async load(modelDir: string, bosTokenId: number | null): Promise<TextTokenizer> {
    const json = await readJsonFile(join(modelDir, 'tokenizer.json'), false)
    const config = await readJsonFile(join(modelDir, 'tokenizer_config.json'), true)
    let tokenizer: Tokenizer
    try {
      tokenizer = new Tokenizer(json, config)
    } catch (err) {
      throw new ModelLoadError(`tokenizer.json cannot be loaded: ${(err as Error).message}`)
    }
    const addBos = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : undefined
    return new TextTokenizer(tokenizer, addBos, bosTokenId)
  }

  /** Prompt ids, never empty: an empty encoding falls back to BOS alone. */
  encode(text: string): number[] {
    const ids = this.tokenizer.encode(text, { add_special_tokens: true }).ids
    if (this.bosId !== null) {
      const hasBos = ids[0] === this.bosId
      if (this.addBos === true && !hasBos) ids.unshift(this.bosId)
      if (this.addBos === false && hasBos && ids.length > 1) ids.shift()
      if (ids.length === 0) ids.push(this.bosId)
    }
    return ids
  }

  /**
   * Never with clean_up_tokenization_spaces (" ." to "."): text is streamed
   * token by token and a space already sent cannot be taken back, so the
   * whole text must be what the pieces add up to (TGI and vLLM decode so too).
   */
  decode(ids: number[], skipSpecialTokens = true): string {
    if (ids.length === 0) return ''
    return this.tokenizer.decode(ids, { skip_special_tokens: skipSpecialTokens, clean_up_tokenization_spaces: false })
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id)
  }
}

async function readJsonFile(path: string, optional: boolean): Promise<Record<string, unknown>> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>
  } catch (err) {
    if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw new ModelLoadError(`cannot read ${path}: ${(err as Error).message}`)
  }
}
