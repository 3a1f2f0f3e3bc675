/**
 * What the engine worker runs for an encoder-decoder folder: the model, its
 * runner and step loop, behind the same ServingEngine face as a decoder-only
 * model. The request's prompt ids are the SOURCE (encoder input); its
 * Generation starts from decoder_start, so the repetition penalty sees the
 * decoder's ids as in transformers' generate.
 */
import type { EngineSink } from './engine-loop.js'
import { Generation } from './generation.js'
import type { EngineOptions } from './protocol.js'
import type { ServingEngine } from './serving-engine.js'
import { pastContributions, Seq2seqLoop } from './seq2seq-loop.js'
import { loadSeq2seqModel } from './seq2seq-model.js'
import { Seq2seqRunner } from './seq2seq-runner.js'

export async function openSeq2seqEngine(opts: EngineOptions, sink: EngineSink): Promise<ServingEngine> {
  const { spec, tokenizer, sessions } = await loadSeq2seqModel(opts.modelDir, opts)
  const shape = { numLayers: spec.numLayers, numHeads: spec.numKvHeads, headDim: spec.headDim, hiddenSize: spec.hiddenSize }
  const runner = new Seq2seqRunner(sessions, shape)
  const start = spec.decoderStartTokenId!
  const eos = new Set(spec.eosTokenIds)
  const loop = new Seq2seqLoop(
    runner,
    {
      shape,
      vocabSize: spec.vocabSize,
      decoderStartTokenId: start,
      limits: opts,
    },
    sink,
  )
  loop.setAdmissionWindow(opts.admissionWaitMs ?? 0)
  return {
    spec,
    // Prefixes only: the decoder's self-attention past. Prompt-learning adapters would need input embeddings.
    accepts: ['past_kv'],
    submit: (msg, adapters) => {
      // A tokenizer without a post-processor encodes "" as nothing; an encoder over no tokens has nothing to attend.
      if (msg.promptIds.length === 0) throw new Error('the source text encodes to no tokens: nothing to encode')
      const gen = new Generation(msg.id, [start], adapters, msg.params, spec.vocabSize, eos, tokenizer)
      pastContributions(gen)
      loop.submit(gen, msg.promptIds)
    },
    cancel: (id) => loop.cancel(id),
    stop: () => loop.stop(),
    warmUp: async () => {
      const enc = await runner.encode([[spec.bosTokenId ?? start]])
      const first = await runner.firstStep(enc, start)
      await runner.step(
        { rowIds: [0], pastLen: 1, selfKeys: first.selfKeys, selfValues: first.selfValues, crossKeys: first.crossKeys, crossValues: first.crossValues, encoderHidden: enc.hidden, encoderMask: enc.mask, sourceLen: enc.sourceLen },
        [start],
      )
      return spec
    },
  }
}
