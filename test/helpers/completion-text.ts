/**
 * The completion text TGI and vLLM return for a case of the shared expected
 * files: decode(prompt + generated) minus decode(prompt), decoded by the
 * model's own tokenizer in one piece (not token by token as the engine does).
 * The expected files hold transformers' decode of the generated ids alone,
 * which drops the first word's leading space.
 */
import { TextTokenizer } from '../../src/engine/tokenizer.js'
import type { ExpectedCase } from './shared-data.js'

export type CompletionOf = (c: Pick<ExpectedCase, 'prompt_ids' | 'generated_ids'>) => string

export async function completionTexts(modelDir: string): Promise<CompletionOf> {
  const tokenizer = await TextTokenizer.load(modelDir, null)
  return (c) => tokenizer.decode([...c.prompt_ids, ...c.generated_ids]).slice(tokenizer.decode(c.prompt_ids).length)
}
