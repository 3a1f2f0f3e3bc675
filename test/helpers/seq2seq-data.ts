/**
 * The encoder-decoder test data copied into the repository
 * (test/fixtures/models/README-seq2seq.md): bart-toy and t5-toy with their PEFT
 * SEQ_2_SEQ_LM adapters and the greedy outputs transformers and PEFT gave.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const fixture = (path: string) => fileURLToPath(new URL(`../fixtures/${path}`, import.meta.url))

export interface Seq2seqCase {
  source: string
  source_ids: number[]
  generated_ids: number[]
  generated_text: string
}

export interface Seq2seqExpected {
  cases: Seq2seqCase[]
  first_step_logits: { source: string; source_ids: number[]; decoder_input_ids: number[]; argmax: number; values: number[] }
}

export interface Seq2seqFixture {
  name: 'bart-toy' | 't5-toy'
  modelDir: string
  adapterName: string
  adapterDir: string
  base: Seq2seqExpected
  adapter: Seq2seqExpected
}

function readJson(path: string): Seq2seqExpected {
  return JSON.parse(readFileSync(path, 'utf8')) as Seq2seqExpected
}

function fixtureOf(name: Seq2seqFixture['name'], adapterName: string): Seq2seqFixture {
  const modelDir = fixture(`models/${name}/`)
  const adapterDir = fixture(`adapters/${name}/${adapterName}/`)
  return {
    name,
    modelDir,
    adapterName,
    adapterDir,
    base: readJson(`${modelDir}expected-base.json`),
    adapter: readJson(`${adapterDir}expected.json`),
  }
}

export const SEQ2SEQ_FIXTURES: readonly Seq2seqFixture[] = [fixtureOf('bart-toy', 'question'), fixtureOf('t5-toy', 'happy')]
