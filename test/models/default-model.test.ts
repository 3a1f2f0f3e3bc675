/** Which model `prefixd serve` loads: MODEL_DIR when set, else the shipped stories260K. */
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import t from 'tap'
import { DEFAULT_MODEL_DIR, resolveModelDir } from '../../src/models/default-model.js'

t.test('MODEL_DIR unset: the shipped stories260K, complete in the optimum layout', async (t) => {
  const dir = resolveModelDir({ MODEL_DIR: '' })
  t.equal(dir, DEFAULT_MODEL_DIR)
  for (const file of ['model.onnx', 'config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'README.md']) {
    t.ok(existsSync(join(dir, file)), `${file} is there`)
  }
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>
  t.match(config, { model_type: 'llama', hidden_size: 64, num_hidden_layers: 5, vocab_size: 512 }, 'the stories260K shape')
})

t.test('MODEL_DIR set: that folder, resolved from the working directory', async (t) => {
  t.equal(resolveModelDir({ MODEL_DIR: 'some/model' }), resolve('some/model'))
})
