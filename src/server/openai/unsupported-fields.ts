/**
 * Fields of OpenAI's API that prefixd does not implement. A client that sends
 * one with its neutral value (what "off" means) is served; any other value is
 * a 400 naming the field, never silently ignored: a caller asking for a
 * frequency penalty must not get text generated without one.
 */
import type { ChatBodyT, CompletionBodyT } from '../schemas/openai.js'
import { OpenAIRequestError } from './errors.js'

const isNeutralPenalty = (v: number | null | undefined) => v == null || v === 0

function checkShared(body: CompletionBodyT | ChatBodyT): void {
  if (!isNeutralPenalty(body.frequency_penalty)) {
    throw new OpenAIRequestError('frequency_penalty is not supported: send 0 or leave it out', 'frequency_penalty')
  }
  if (!isNeutralPenalty(body.presence_penalty)) {
    throw new OpenAIRequestError('presence_penalty is not supported: send 0 or leave it out', 'presence_penalty')
  }
  if (body.logit_bias != null && Object.keys(body.logit_bias).length > 0) {
    throw new OpenAIRequestError('logit_bias is not supported: send {} or leave it out', 'logit_bias')
  }
}

export function checkCompletionFields(body: CompletionBodyT): void {
  checkShared(body)
  if (body.best_of != null && body.best_of !== 1 && body.best_of !== (body.n ?? 1)) {
    throw new OpenAIRequestError('best_of is not supported: send 1 (or the same value as n) or leave it out', 'best_of')
  }
  if (body.suffix != null && body.suffix !== '') {
    throw new OpenAIRequestError('suffix (insertion) is not supported: send an empty string or leave it out', 'suffix')
  }
}

export function checkChatFields(body: ChatBodyT): void {
  checkShared(body)
  if (body.max_tokens != null && body.max_completion_tokens != null && body.max_tokens !== body.max_completion_tokens) {
    throw new OpenAIRequestError('max_tokens and max_completion_tokens differ; give one of them', 'max_completion_tokens')
  }
  if (body.tools != null && body.tools.length > 0) {
    throw new OpenAIRequestError('tools (function calling) are not supported: send [] or leave it out', 'tools')
  }
  if (body.tool_choice != null && body.tool_choice !== 'none' && body.tool_choice !== 'auto') {
    throw new OpenAIRequestError('tool_choice is not supported: send "none" or "auto", or leave it out', 'tool_choice')
  }
  if (body.response_format != null && body.response_format.type !== 'text') {
    throw new OpenAIRequestError(`response_format ${JSON.stringify(body.response_format.type)} is not supported: only {"type": "text"}`, 'response_format')
  }
  if (body.store === true) {
    throw new OpenAIRequestError('store is not supported: prefixd keeps no completions; send false or leave it out', 'store')
  }
}
