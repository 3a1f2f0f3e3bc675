/**
 * Drives an engine the way concurrent clients would, for the batching tests:
 * one request alone, or a mix whose requests arrive while others are already
 * generating ("after k tokens have come back"). Works on anything with the
 * EngineClient's submit(), so the worker path is what gets exercised.
 */
import type { EngineClient } from '../../src/engine/engine-client.js'
import type { FinishReason, GenerationParams, TokenEvent } from '../../src/engine/protocol.js'

export interface SamplingChoice {
  seed: number
  temperature: number
  topK: number
  topP: number
}

export interface RequestCase {
  promptIds: number[]
  /** Engine prefix keys, concatenated in this order; [] for none. */
  prefixKeys: string[]
  maxNewTokens: number
  /** Submitted once this many tokens of the mix (all requests together) have come back; 0: at once. */
  arrivalAfter: number
  /** The client goes away after this many of its own tokens (absent: never). */
  cancelAfter?: number
  /** Absent: greedy. */
  sampling?: SamplingChoice
  stop?: string[]
  /** Whether the request reports its tokens' logprobs (absent: it does, the engine's default). */
  logprobs?: boolean
  /** Top logprobs asked for (absent: none; any makes the sampler read the logits). */
  topLogprobs?: number
}

/** What a client sees of one finished request. */
export interface Outcome {
  ids: number[]
  logprobs: number[]
  /** Each token's emitted text, in order. */
  pieces: string[]
  /** 'cancelled': the client cancelled it (cancelAfter) before it finished. */
  reason: FinishReason | 'cancelled'
  text: string
}

export function paramsFor(req: Pick<RequestCase, 'maxNewTokens' | 'sampling' | 'stop' | 'logprobs' | 'topLogprobs'>): GenerationParams {
  const s = req.sampling
  return {
    doSample: s !== undefined,
    temperature: s?.temperature ?? 1,
    topK: s?.topK ?? 0,
    topP: s?.topP ?? 1,
    repetitionPenalty: 1,
    seed: s?.seed ?? 0,
    maxNewTokens: req.maxNewTokens,
    stop: req.stop ?? [],
    deadline: Date.now() + 600_000,
    ...(req.logprobs !== undefined ? { logprobs: req.logprobs } : {}),
    ...(req.topLogprobs !== undefined ? { topLogprobs: req.topLogprobs } : {}),
  }
}

function outcomeOf(events: TokenEvent[]): Outcome {
  const finish = events.at(-1)!.finish
  const pieces = events.map((e) => e.token.text)
  return {
    ids: events.map((e) => e.token.id),
    logprobs: events.map((e) => e.token.logprob),
    pieces,
    reason: finish?.reason ?? 'cancelled',
    text: finish?.generatedText ?? pieces.join(''),
  }
}

type Submitter = Pick<EngineClient, 'submit'>

/**
 * Runs the requests as one continuous mix and resolves with their outcomes in
 * the order given. A request whose arrival point cannot be reached any more
 * (everything before it already finished, e.g. by EOS) is submitted as soon as
 * the engine would otherwise go idle, so the mix always completes.
 */
export function runMix(engine: Submitter, reqs: readonly RequestCase[]): Promise<Outcome[]> {
  return new Promise((resolve, reject) => {
    const results: Outcome[] = new Array(reqs.length)
    const order = reqs.map((_, i) => i).sort((a, b) => reqs[a].arrivalAfter - reqs[b].arrivalAfter)
    let next = 0
    let received = 0
    let outstanding = 0
    let finished = 0

    const submitDue = (): void => {
      while (next < order.length && (reqs[order[next]].arrivalAfter <= received || outstanding === 0)) {
        submitOne(order[next++])
      }
    }
    const submitOne = (i: number): void => {
      const req = reqs[i]
      const events: TokenEvent[] = []
      outstanding++
      const submitted = engine.submit(req.promptIds, req.prefixKeys, paramsFor(req), {
        onToken: (e) => {
          events.push(e)
          received++
          const cancel = !e.finish && req.cancelAfter !== undefined && events.length >= req.cancelAfter
          if (cancel) submitted.cancel()
          if (e.finish || cancel) {
            outstanding--
            results[i] = outcomeOf(events)
            if (++finished === reqs.length) resolve(results)
          }
          submitDue()
        },
        onError: (err) => reject(err),
      })
    }
    submitDue()
  })
}

/** One request with nothing else in the engine (the caller runs these one after another), never cancelled. */
export async function runAlone(engine: Submitter, req: RequestCase): Promise<Outcome> {
  const [out] = await runMix(engine, [{ ...req, arrivalAfter: 0, cancelAfter: undefined }])
  return out
}

/** Each request alone, strictly one after another, so each is a batch of one. */
export async function runEachAlone(engine: Submitter, reqs: readonly RequestCase[]): Promise<Outcome[]> {
  const out: Outcome[] = []
  for (const r of reqs) out.push(await runAlone(engine, r))
  return out
}
