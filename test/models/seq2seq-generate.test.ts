/**
 * The generator's random BART and T5 in optimum's encoder-decoder layout: the
 * files and config.json optimum and transformers would write, deterministic
 * per seed, loaded by the engine as any export, prefixes that change the
 * output, and "batched equals alone" on them (rows with different prefix
 * lengths, staggered arrivals), so the seq2seq path is tested on models that
 * are not the shared toys too.
 */
import t from 'tap'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { GenerationParams, TokenEvent } from '../../src/engine/protocol.js'
import { runModelGenerate } from '../../src/models/generate-command.js'
import { generateSeq2seqModel } from '../../src/models/generate/seq2seq/seq2seq-directory.js'
import { randomPrefixes, startFixture, tempDir } from '../helpers/batching-models.js'
import { assertBatchingProperty, type TestEngine } from '../helpers/batching-property.js'
import { greedyParams } from '../helpers/engine-params.js'

const dir = await tempDir(t, 'seq2seq-generate')
const OPTIMUM_FILES = ['config.json', 'decoder_model.onnx', 'decoder_with_past_model.onnx', 'encoder_model.onnx', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']

function generate(engine: TestEngine, ids: number[], keys: string[], params: GenerationParams): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const out: number[] = []
    engine.submit(ids, keys, params, { onToken: (e: TokenEvent) => (out.push(e.token.id), e.finish && resolve(out)), onError: reject })
  })
}

for (const [i, arch] of (['bart', 't5'] as const).entries()) {
  t.test(`${arch}: optimum layout, deterministic, served exactly in mixed batches`, async (t) => {
    const out = join(dir, arch)
    await generateSeq2seqModel({ arch, size: 'tiny', out, seed: 5 })
    t.same((await readdir(out)).sort(), OPTIMUM_FILES)
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as Record<string, unknown>
    t.match(config, { model_type: arch, is_encoder_decoder: true, decoder_start_token_id: arch === 'bart' ? 2 : 0 })

    const again = join(dir, `${arch}-again`)
    await generateSeq2seqModel({ arch, size: 'tiny', out: again, seed: 5 })
    for (const f of ['encoder_model.onnx', 'decoder_with_past_model.onnx']) {
      t.ok((await readFile(join(out, f))).equals(await readFile(join(again, f))), `${f}: same seed, same bytes`)
    }

    const fixture = await startFixture(t, `${arch} tiny`, out, randomPrefixes([2, 7]))
    t.equal(fixture.engine.spec.architecture, 'encoder-decoder')
    const source = [1, 40, 41, 42, 43, 44]
    const plain = await generate(fixture.engine, source, [], greedyParams(10))
    const prefixed = await generate(fixture.engine, source, ['rand7'], greedyParams(10))
    t.equal(new Set(plain).size > 3, true, `greedy text varies: ${plain.join(',')}`)
    t.notSame(prefixed, plain, 'a prefix changes the output')

    const report = await assertBatchingProperty(fixture, {}, { numRuns: 6, seed: 777 + i })
    t.ok(report.requests >= 12, `${report.requests} requests, ${report.tokens} tokens`)
  })
}

t.test('the CLI writes them: --arch bart|t5 with their own sizes', async (t) => {
  let err = ''
  const run = (argv: string[]) => runModelGenerate(argv, { out: () => {}, err: (s) => (err += s) })
  const out = join(dir, 'cli-t5')
  t.equal(await run(['--arch', 't5', '--size', 'tiny', '--out', out, '--seed', '2']), 0)
  t.same((await readdir(out)).sort(), OPTIMUM_FILES)
  t.equal(await run(['--arch', 'bart', '--size', '15m', '--out', out]), 2)
  t.match(err, /--size must be one of tiny, bench, got '15m'/)
})
