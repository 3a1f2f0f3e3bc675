/**
 * The step's update half acts on what its passes gave: a decode pass that
 * fails fails the rows in it (and only those), while the rows admitted in the
 * same step prefill and carry on with the tokens they get alone. Checked on
 * the real stories260K through the in-process loop; the failure is one real
 * pass refused by the Forward the loop is given.
 */
import t from 'tap'
import type { TokenEvent } from '../../src/engine/protocol.js'
import { InProcessEngine } from '../helpers/batching-inprocess.js'
import { paramsFor, runAlone } from '../helpers/batching-requests.js'
import { readExpected, storiesModelDir } from '../helpers/shared-data.js'
import { join } from 'node:path'

const prompts = readExpected(join(storiesModelDir, 'expected-base.json')).cases.map((c) => c.prompt_ids)
const [first, second] = prompts

t.test('a failed decode pass fails its rows; the rows prefilled in the same step carry on', async (t) => {
  const alone = await runAlone(await InProcessEngine.load(storiesModelDir), { promptIds: second, prefixKeys: [], maxNewTokens: 6, arrivalAfter: 0 })

  let failNextDecode = false
  const engine = await InProcessEngine.load(storiesModelDir, {}, (forward) => ({
    ...forward,
    run: (feed) => {
      // A decode pass reads a past; the admitted rows' prefill (no prefix) reads none.
      if (!failNextDecode || feed.pastLen === 0) return forward.run(feed)
      failNextDecode = false
      return Promise.reject(new Error('decode pass refused'))
    },
  }))

  const log: string[] = []
  const firstTokens: TokenEvent[] = []
  const secondTokens: TokenEvent[] = []
  let secondFinished = (): void => {}
  const secondDone = new Promise<void>((resolve) => (secondFinished = resolve))
  const firstError = await new Promise<Error>((resolveFirst, reject) => {
    engine.submit(first, [], paramsFor({ maxNewTokens: 8 }), {
      onToken: (e) => {
        log.push('first token')
        firstTokens.push(e)
        if (firstTokens.length !== 2) return
        // The next step decodes the first request and admits the second.
        failNextDecode = true
        engine.submit(second, [], paramsFor({ maxNewTokens: 6 }), {
          onToken: (e) => {
            log.push('second token')
            secondTokens.push(e)
            if (e.finish) secondFinished()
          },
          onError: reject,
        })
      },
      onError: (err) => {
        log.push('first error')
        resolveFirst(err)
      },
    })
  })
  await secondDone

  t.equal(firstError.message, 'decode pass refused', "the pass's error reaches the request in it")
  t.equal(firstTokens.length, 2, 'the failed request gets no token after the failed pass')
  t.same(log.slice(0, 4), ['first token', 'first token', 'first error', 'second token'], 'the failure is reported before the tokens of the same step')
  t.same(secondTokens.map((e) => e.token.id), alone.ids, 'the request admitted in that step gets the tokens it gets alone')
  t.equal(secondTokens.at(-1)?.finish?.reason, 'length', 'and runs to its max_new_tokens')
})
