/**
 * POST /v1/completions: OpenAI's (legacy) text completions, streamed or not.
 * `model` is the base model's name or a prefix id.
 */
import { randomUUID } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { runChoices, usage } from '../openai/choices.js'
import { nowSeconds, prepareChoices, toGenerationRequest } from '../openai/generate-request.js'
import { completionLogprobs } from '../openai/logprobs.js'
import { streamAnswer } from '../openai/stream.js'
import { checkCompletionFields } from '../openai/unsupported-fields.js'
import { CompletionBody, CompletionResponse, jsonOrEventStream, openAIErrorResponses } from '../schemas/openai.js'
import { clientGone } from '../client-gone.js'

/** OpenAI's default max_tokens for completions. */
const DEFAULT_COMPLETION_TOKENS = 16

export const openAICompletionRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/completions',
    {
      schema: {
        summary: 'OpenAI-compatible text completion (streamed as server-sent events when stream is true)',
        tags: ['OpenAI'],
        body: CompletionBody,
        response: { 200: jsonOrEventStream(CompletionResponse, 'text_completion'), ...openAIErrorResponses },
      },
    },
    async (request, reply) => {
      const body = request.body
      checkCompletionFields(body)
      const prompt = typeof body.prompt === 'string' ? body.prompt : body.prompt[0]
      const withLogprobs = body.logprobs != null
      const generation = toGenerationRequest(app, body, prompt, body.max_tokens ?? DEFAULT_COMPLETION_TOKENS, withLogprobs)
      const choices = await prepareChoices(app, request.principal, generation, body.n ?? 1)
      const echo = body.echo === true ? prompt : ''
      const id = `cmpl-${randomUUID()}`
      const created = nowSeconds()
      const promptTokens = choices[0].promptIds.length

      if (body.stream === true) {
        return streamAnswer(request, reply, async (send, signal) => {
          const chunk = (choice: object[], extra: object = {}) => ({ id, object: 'text_completion', created, model: body.model, choices: choice, ...extra })
          // Echo comes first, once per choice, as OpenAI sends it.
          if (echo !== '') choices.forEach((_, index) => send(chunk([{ index, text: echo, logprobs: null, finish_reason: null }])))
          const offsets = choices.map(() => echo.length)
          const results = await runChoices(app, request, choices, signal, (p) => {
            const logprobs = withLogprobs ? completionLogprobs([p.token], offsets[p.index]) : null
            offsets[p.index] += p.token.text.length
            send(chunk([{ index: p.index, text: p.text, logprobs, finish_reason: p.finishReason ?? null }]))
          })
          if (body.stream_options?.include_usage === true) send(chunk([], { usage: usage(promptTokens, results) }))
        })
      }

      const results = await runChoices(app, request, choices, clientGone(reply.raw))
      return {
        id,
        object: 'text_completion' as const,
        created,
        model: body.model,
        choices: results.map((r) => ({
          index: r.index,
          text: echo + r.text,
          logprobs: withLogprobs ? completionLogprobs(r.tokens, echo.length) : null,
          finish_reason: r.finishReason,
        })),
        usage: usage(promptTokens, results),
      }
    },
  )
}
