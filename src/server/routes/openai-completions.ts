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
      const prompts = typeof body.prompt === 'string' ? [body.prompt] : body.prompt
      const withLogprobs = body.logprobs != null
      const logprobs = withLogprobs ? { top: body.logprobs ?? 0, prompt: body.echo === true } : null
      const n = body.n ?? 1
      // As OpenAI numbers them: prompt i's choices are i·n ... i·n + n - 1.
      const perPrompt = await Promise.all(
        prompts.map((prompt) =>
          prepareChoices(app, request.principal, toGenerationRequest(app, body, prompt, body.max_tokens ?? DEFAULT_COMPLETION_TOKENS, logprobs), n),
        ),
      )
      const choices = perPrompt.flat()
      const echoOf = (index: number) => (body.echo === true ? prompts[Math.floor(index / n)] : '')
      const id = `cmpl-${randomUUID()}`
      const created = nowSeconds()
      const promptTokens = perPrompt.reduce((sum, c) => sum + c[0].promptIds.length, 0)

      if (body.stream === true) {
        return streamAnswer(request, reply, async (send, signal) => {
          const chunk = (choice: object[], extra: object = {}) => ({ id, object: 'text_completion', created, model: body.model, choices: choice, ...extra })
          // Echo comes first in each choice, once, with the prompt's logprobs when asked (they arrive with the first token).
          const offsets = choices.map((_, index) => echoOf(index).length)
          const started = new Set<number>()
          const results = await runChoices(app.generation, request.log, choices, signal, (p) => {
            if (!started.has(p.index)) {
              started.add(p.index)
              const echo = echoOf(p.index)
              if (echo !== '') send(chunk([{ index: p.index, text: echo, logprobs: p.prompt ? completionLogprobs([], 0, p.prompt) : null, finish_reason: null }]))
            }
            const lp = withLogprobs ? completionLogprobs([p.token], offsets[p.index]) : null
            offsets[p.index] += p.token.text.length
            send(chunk([{ index: p.index, text: p.text, logprobs: lp, finish_reason: p.finishReason ?? null }]))
          })
          if (body.stream_options?.include_usage === true) send(chunk([], { usage: usage(promptTokens, results) }))
        })
      }

      const results = await runChoices(app.generation, request.log, choices, clientGone(reply.raw))
      return {
        id,
        object: 'text_completion' as const,
        created,
        model: body.model,
        choices: results.map((r) => ({
          index: r.index,
          text: echoOf(r.index) + r.text,
          logprobs: withLogprobs ? completionLogprobs(r.tokens, r.prompt ? 0 : echoOf(r.index).length, r.prompt) : null,
          finish_reason: r.finishReason,
        })),
        usage: usage(promptTokens, results),
      }
    },
  )
}
