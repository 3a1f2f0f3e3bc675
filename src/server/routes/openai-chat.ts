/**
 * POST /v1/chat/completions: the messages rendered with the model's chat
 * template, then generated like a completion, streamed or not.
 */
import { randomUUID } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { ChatTemplate } from '../openai/chat-template.js'
import { runChoices, usage } from '../openai/choices.js'
import { OpenAIRequestError } from '../openai/errors.js'
import { nowSeconds, prepareChoices, toGenerationRequest } from '../openai/generate-request.js'
import { chatLogprobs } from '../openai/logprobs.js'
import { streamAnswer } from '../openai/stream.js'
import { checkChatFields } from '../openai/unsupported-fields.js'
import { ChatBody, ChatResponse, jsonOrEventStream, openAIErrorResponses } from '../schemas/openai.js'
import { clientGone } from '../client-gone.js'

export interface ChatRoutesOptions {
  /** The model's chat template; null when it has none (every request is then a 400). */
  chatTemplate: ChatTemplate | null
}

export const openAIChatRoutes: FastifyPluginAsyncTypebox<ChatRoutesOptions> = async (app, { chatTemplate }) => {
  app.post(
    '/chat/completions',
    {
      schema: {
        summary: "OpenAI-compatible chat completion, through the model's chat template (streamed when stream is true)",
        tags: ['OpenAI'],
        body: ChatBody,
        response: { 200: jsonOrEventStream(ChatResponse, 'chat.completion.chunk'), ...openAIErrorResponses },
      },
    },
    async (request, reply) => {
      const body = request.body
      checkChatFields(body)
      if (chatTemplate === null) {
        throw new OpenAIRequestError(
          `model '${app.modelId}' has no chat template (tokenizer_config.json has no chat_template): use /v1/completions`,
          'messages',
          'no_chat_template',
        )
      }
      const prompt = chatTemplate.render(body.messages)
      const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? null
      const top = body.logprobs === true ? (body.top_logprobs ?? 0) : -1
      const logprobs = top >= 0 ? { top, prompt: false } : null
      const choices = await prepareChoices(app, request.principal, toGenerationRequest(app, body, prompt, maxTokens, logprobs), body.n ?? 1)
      const id = `chatcmpl-${randomUUID()}`
      const created = nowSeconds()
      const promptTokens = choices[0].promptIds.length

      if (body.stream === true) {
        return streamAnswer(request, reply, async (send, signal) => {
          const chunk = (choice: object[], extra: object = {}) => ({ id, object: 'chat.completion.chunk', created, model: body.model, choices: choice, ...extra })
          choices.forEach((_, index) => send(chunk([{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }])))
          const results = await runChoices(app.generation, request.log, choices, signal, (p) => {
            const logprobs = top >= 0 ? chatLogprobs([p.token]) : null
            if (p.text !== '' || logprobs !== null) send(chunk([{ index: p.index, delta: { content: p.text }, logprobs, finish_reason: null }]))
            if (p.finishReason) send(chunk([{ index: p.index, delta: {}, logprobs: null, finish_reason: p.finishReason }]))
          })
          if (body.stream_options?.include_usage === true) send(chunk([], { usage: usage(promptTokens, results) }))
        })
      }

      const results = await runChoices(app.generation, request.log, choices, clientGone(reply.raw))
      return {
        id,
        object: 'chat.completion' as const,
        created,
        model: body.model,
        choices: results.map((r) => ({
          index: r.index,
          message: { role: 'assistant' as const, content: r.text },
          logprobs: top >= 0 ? chatLogprobs(r.tokens) : null,
          finish_reason: r.finishReason,
        })),
        usage: usage(promptTokens, results),
      }
    },
  )
}
