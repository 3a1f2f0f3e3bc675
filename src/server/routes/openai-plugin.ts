/**
 * The OpenAI-compatible API under /v1, in its own encapsulated scope so that
 * its errors (and unknown /v1 routes) answer in OpenAI's shape while every
 * other route keeps prefixd's {error, error_type}.
 */
import type { FastifyPluginAsync } from 'fastify'
import { openAIChatRoutes } from './openai-chat.js'
import { openAICompletionRoutes } from './openai-completions.js'
import { openAIModelRoutes } from './openai-models.js'
import { ChatTemplate } from '../openai/chat-template.js'
import { openAIErrorHandler, openAINotFoundHandler } from '../openai/errors.js'

export interface OpenAIPluginOptions {
  /** The served model's folder: its tokenizer_config.json may hold a chat template. */
  modelDir: string
}

export const openAIPlugin: FastifyPluginAsync<OpenAIPluginOptions> = async (app, { modelDir }) => {
  app.setErrorHandler(openAIErrorHandler)
  app.setNotFoundHandler(openAINotFoundHandler)
  const chatTemplate = await ChatTemplate.load(modelDir)
  await app.register(openAIModelRoutes)
  await app.register(openAICompletionRoutes)
  await app.register(openAIChatRoutes, { chatTemplate })
}
