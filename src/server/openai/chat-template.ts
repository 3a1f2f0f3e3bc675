/**
 * The model's chat template (tokenizer_config.json `chat_template`, or the
 * chat_template.jinja file newer transformers versions save beside it),
 * rendered with @huggingface/jinja the way transformers' apply_chat_template
 * does: the messages, add_generation_prompt true, and the special tokens'
 * text (bos_token, eos_token, ...) as variables. A model without a template
 * has no chat route: it answers 400 and says so.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Template } from '@huggingface/jinja'
import type { ChatMessageT } from '../schemas/openai.js'
import { OpenAIRequestError } from './errors.js'

type TokenField = string | { content?: string } | null | undefined

const tokenText = (t: TokenField): string => (typeof t === 'string' ? t : (t?.content ?? ''))

interface TokenizerConfig {
  chat_template?: string | Array<{ name: string; template: string }>
  bos_token?: TokenField
  eos_token?: TokenField
  unk_token?: TokenField
  pad_token?: TokenField
}

export class ChatTemplate {
  private constructor(
    private readonly template: Template,
    private readonly specialTokens: Record<string, string>,
  ) {}

  /** The model's template, or null when tokenizer_config.json has none. */
  static async load(modelDir: string): Promise<ChatTemplate | null> {
    const config = JSON.parse((await readOptional(join(modelDir, 'tokenizer_config.json'))) ?? '{}') as TokenizerConfig
    // transformers also allows a list of named templates; "default" is the chat one.
    const inConfig = Array.isArray(config.chat_template)
      ? config.chat_template.find((t) => t.name === 'default')?.template
      : config.chat_template
    const raw = inConfig ?? (await readOptional(join(modelDir, 'chat_template.jinja')))
    if (typeof raw !== 'string' || raw === '') return null
    return new ChatTemplate(new Template(raw), {
      bos_token: tokenText(config.bos_token),
      eos_token: tokenText(config.eos_token),
      unk_token: tokenText(config.unk_token),
      pad_token: tokenText(config.pad_token),
    })
  }

  /**
   * The prompt text for these messages. A leading BOS the template writes is
   * dropped: the tokenizer adds BOS itself when the model wants one (as
   * apply_chat_template's tokenize step does not), and two would change the output.
   */
  render(messages: ChatMessageT[]): string {
    const plain = messages.map((m) => ({
      ...m,
      content: Array.isArray(m.content) ? m.content.map((p) => p.text).join('') : (m.content ?? ''),
    }))
    let text: string
    try {
      text = this.template.render({ messages: plain, add_generation_prompt: true, ...this.specialTokens })
    } catch (err) {
      // Templates raise_exception() on conversations they refuse (roles out of order, ...).
      throw new OpenAIRequestError(`the model's chat template refused these messages: ${(err as Error).message}`, 'messages', 'chat_template')
    }
    const bos = this.specialTokens.bos_token
    return bos !== '' && text.startsWith(bos) ? text.slice(bos.length) : text
  }
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
}
