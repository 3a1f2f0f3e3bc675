/**
 * A maximum-size prompt is tokenized off the HTTP thread: while it is being
 * encoded, other requests (the probes) are answered, and it still ends with
 * the position-budget answer (422) it always had. How fast /health answers
 * meanwhile is measured in bench/ (bench/RESULTS.md), not here.
 */
import t from 'tap'
import { request } from 'undici'
import { INLINE_MAX_CHARS, OffThreadEncoder } from '../../src/engine/prompt-encoder.js'
import { TextTokenizer } from '../../src/engine/tokenizer.js'
import { fromGenerateBody } from '../../src/server/tgi-request.js'
import { startApp } from '../helpers/app.js'
import { generatedModel } from '../helpers/tiny-model.js'

const app = await startApp(t, await generatedModel('llama'))
const base = await app.listen({ host: '127.0.0.1', port: 0 })
const prompt = 'Once upon a time there was a little dog. '.repeat(1600).slice(0, app.config.MAX_INPUT_CHARS)

t.test('/health answers while a maximum-size prompt is being tokenized', async (t) => {
  let prepared = false
  const preparing = app.generation.prepare(fromGenerateBody({ inputs: prompt }, false)).then(
    () => (prepared = true),
    (err: unknown) => {
      prepared = true
      return err
    },
  )
  const health = await request(`${base}/health`)
  t.equal(health.statusCode, 200)
  await health.body.dump()
  t.notOk(prepared, 'the prompt was still being tokenized when /health answered')
  const err = (await preparing) as { code?: string; message?: string }
  t.equal(err.code, 'PREFIXD_PROMPT_TOO_LONG', 'and it is then refused for its length')
  t.match(err.message, /prompt \(\d{4,} tokens\)/)
})

t.test('over HTTP: 422, and short prompts are unchanged', async (t) => {
  const long = await request(`${base}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: prompt }) })
  t.equal(long.statusCode, 422)
  t.equal(((await long.body.json()) as { error_type: string }).error_type, 'validation')
  const short = await request(`${base}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: 'abc', parameters: { max_new_tokens: 2 } }) })
  t.equal(short.statusCode, 200)
  await short.body.dump()
})

t.test('the tokenizer worker gives the ids the inline tokenizer gives', async (t) => {
  const modelDir = await generatedModel('llama')
  const inline = await TextTokenizer.load(modelDir, app.engine.spec.bosTokenId)
  const encoder = await OffThreadEncoder.start(modelDir, app.engine.spec.bosTokenId, inline, () => t.fail('the worker died'))
  t.teardown(() => encoder.close())
  for (const text of ['abc', 'x'.repeat(INLINE_MAX_CHARS + 1), 'Once upon a time, é ü 漢字 🙂 '.repeat(80)]) {
    t.same(await encoder.encode(text), inline.encode(text), `${text.length} characters`)
  }
})
