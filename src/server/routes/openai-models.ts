/**
 * GET /v1/models and /v1/models/{model}: the base model, and every prefix the
 * caller may use (each a "model" whose parent is the base model).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import type { PrefixRecord } from '../../prefixes/store/prefix-record.js'
import { ModelList, ModelObject, ModelParams, openAIErrorResponses } from '../schemas/openai.js'

const PAGE = 1000
/** A guard, not a feature: /v1/models is for people and pickers, the paged /prefixes for scripts. */
const MAX_LISTED = 10_000

export const openAIModelRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const startedAt = Math.floor(Date.now() / 1000)
  const base = () => ({ id: app.modelId, object: 'model' as const, created: startedAt, owned_by: 'prefixd', root: app.modelId, parent: null as string | null })
  const asModel = (r: PrefixRecord) => ({
    id: r.id,
    object: 'model' as const,
    created: Math.floor(Date.parse(r.created_at) / 1000),
    owned_by: r.owner,
    root: app.modelId,
    parent: app.modelId,
  })

  app.get(
    '/models',
    { schema: { summary: 'The base model and the prefixes usable as `model`', tags: ['OpenAI'], response: { 200: ModelList, ...openAIErrorResponses } } },
    async (request) => {
      const data = [base()]
      // The store decides what a caller may see: its own prefixes and public ones.
      let cursor: string | null = null
      do {
        const page: Awaited<ReturnType<FastifyInstance['prefixStore']['list']>> = await app.prefixStore.list(cursor, PAGE, request.principal)
        for (const r of page.records) if (r.id !== app.modelId) data.push(asModel(r))
        cursor = page.nextCursor
      } while (cursor !== null && data.length < MAX_LISTED)
      return { object: 'list' as const, data }
    },
  )

  app.get(
    '/models/:model',
    {
      schema: {
        summary: 'One model: the base model or a prefix',
        tags: ['OpenAI'],
        params: ModelParams,
        response: { 200: ModelObject, ...openAIErrorResponses },
      },
    },
    async (request) => (request.params.model === app.modelId ? base() : asModel(await app.prefixStore.get(request.params.model, request.principal))),
  )
}
