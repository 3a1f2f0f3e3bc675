/**
 * Liveness, readiness and model information. /ready is 503 with the reason
 * until the model is loaded and warmed up, and again once the engine dies or
 * the server is draining.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { ErrorBody } from '../schemas/common.js'
import { architectureOf } from '../../domain/model-spec.js'
import { probeRoute } from '../probe-route.js'
import { PROTOCOL_VERSION } from '../../engine/protocol.js'

const Status = Type.Object({ status: Type.String() })

export const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/health', { config: probeRoute, schema: { summary: 'The process lives', response: { 200: Status } } }, async () => ({ status: 'ok' }))

  app.get(
    '/ready',
    { config: probeRoute, schema: { summary: 'Ready to serve: model loaded and warmed up', response: { 200: Status, 503: ErrorBody } } },
    async (_request, reply) => {
      const reason = app.readiness.notReadyReason()
      if (reason !== null) return reply.code(503).send({ error: reason, error_type: 'unavailable' })
      return { status: 'ready' }
    },
  )

  app.get(
    '/info',
    {
      config: probeRoute,
      schema: {
        summary: 'The base model and the batching limits',
        response: {
          200: Type.Object({
            model_id: Type.String(),
            model_type: Type.String(),
            architecture: Type.Union([Type.Literal('decoder-only'), Type.Literal('encoder-decoder')]),
            num_layers: Type.Integer(),
            num_attention_heads: Type.Integer(),
            num_key_value_heads: Type.Integer(),
            head_dim: Type.Integer(),
            value_head_dim: Type.Integer(),
            vocab_size: Type.Integer(),
            max_positions: Type.Integer(),
            graph_rewrites: Type.Array(Type.String(), { description: 'Rewrites applied to the graph at load, each exact (position_ids: positions as an input; float32_io: float32 key/values and logits)' }),
            quantization: Type.Union([Type.Literal('int8-dynamic'), Type.Null()]),
            batch_invariant: Type.Boolean({
              description: "Whether a request's output is the same whatever shares its batch (false for dynamically quantized models)",
            }),
            prefixes_supported: Type.Boolean(),
            prefix_refusal: Type.Union([Type.String(), Type.Null()], { description: 'Why this model takes no prefixes, when it does not' }),
            max_batch_size: Type.Integer(),
            max_batch_tokens: Type.Integer(),
            max_prefill_tokens: Type.Integer(),
            max_waiting_requests: Type.Integer(),
            execution_provider: Type.String(),
            protocol_version: Type.Integer(),
            version: Type.String(),
          }),
        },
      },
    },
    async () => {
      const spec = app.engine.spec
      const c = app.config
      return {
        model_id: app.modelId,
        model_type: spec.modelType,
        architecture: architectureOf(spec),
        num_layers: spec.numLayers,
        num_attention_heads: spec.numAttentionHeads,
        num_key_value_heads: spec.numKvHeads,
        head_dim: spec.headDim,
        value_head_dim: spec.valueHeadDim,
        vocab_size: spec.vocabSize,
        max_positions: spec.maxPositions,
        graph_rewrites: spec.graphRewrites,
        quantization: spec.quantization,
        batch_invariant: spec.batchInvariant,
        prefixes_supported: spec.prefixRefusal === null,
        prefix_refusal: spec.prefixRefusal,
        max_batch_size: c.MAX_BATCH_SIZE,
        max_batch_tokens: c.MAX_BATCH_TOKENS,
        max_prefill_tokens: c.MAX_PREFILL_TOKENS,
        max_waiting_requests: c.MAX_WAITING_REQUESTS,
        execution_provider: c.EXECUTION_PROVIDER,
        protocol_version: PROTOCOL_VERSION,
        version: app.prefixdVersion,
      }
    },
  )
}
