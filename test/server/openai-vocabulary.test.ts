/**
 * OpenAI's vocabulary as prefixd speaks it, unit by unit: the fields it
 * refuses rather than ignores, stop lists, finish reasons, usage, and the two
 * logprobs formats (legacy completions with echo, and chat with its bytes).
 */
import t from 'tap'
import type { PromptToken } from '../../src/engine/protocol.js'
import { usage, type Token } from '../../src/server/openai/choices.js'
import { OpenAIRequestError } from '../../src/server/openai/errors.js'
import { finishReason, stopList } from '../../src/server/openai/generate-request.js'
import { chatLogprobs, completionLogprobs } from '../../src/server/openai/logprobs.js'
import { checkChatFields, checkCompletionFields } from '../../src/server/openai/unsupported-fields.js'
import type { ChatBodyT, CompletionBodyT } from '../../src/server/schemas/openai.js'

t.test('OpenAI fields prefixd does not implement: their neutral value is served, any other is refused by name', async (t) => {
  const chat = (extra: Partial<ChatBodyT>): ChatBodyT => ({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...extra })
  const completion = (extra: Partial<CompletionBodyT>): CompletionBodyT => ({ model: 'm', prompt: 'hi', ...extra })
  const refusedParam = (check: () => void): string | null | undefined => {
    try {
      check()
    } catch (err) {
      return err instanceof OpenAIRequestError ? err.param : 'not an OpenAIRequestError'
    }
    return undefined
  }
  for (const neutral of [{}, { frequency_penalty: 0 }, { presence_penalty: null }, { logit_bias: {} }]) {
    t.equal(refusedParam(() => checkChatFields(chat(neutral))), undefined, `chat serves ${JSON.stringify(neutral)}`)
    t.equal(refusedParam(() => checkCompletionFields(completion(neutral))), undefined, `completions serve ${JSON.stringify(neutral)}`)
  }
  for (const [field, value] of [['frequency_penalty', 0.5], ['presence_penalty', -1], ['logit_bias', { '42': 5 }]] as const) {
    t.equal(refusedParam(() => checkChatFields(chat({ [field]: value }))), field)
    t.equal(refusedParam(() => checkCompletionFields(completion({ [field]: value }))), field)
  }
  t.equal(refusedParam(() => checkCompletionFields(completion({ best_of: 2, n: 2 }))), undefined, 'best_of equal to n')
  t.equal(refusedParam(() => checkCompletionFields(completion({ best_of: 3 }))), 'best_of')
  t.equal(refusedParam(() => checkCompletionFields(completion({ suffix: '' }))), undefined)
  t.equal(refusedParam(() => checkCompletionFields(completion({ suffix: 'end' }))), 'suffix')
  t.equal(refusedParam(() => checkChatFields(chat({ max_tokens: 5, max_completion_tokens: 5 }))), undefined)
  t.equal(refusedParam(() => checkChatFields(chat({ max_tokens: 5, max_completion_tokens: 6 }))), 'max_completion_tokens')
  t.equal(refusedParam(() => checkChatFields(chat({ tools: [] }))), undefined)
  t.equal(refusedParam(() => checkChatFields(chat({ tools: [{ type: 'function' }] }))), 'tools')
  t.equal(refusedParam(() => checkChatFields(chat({ tool_choice: 'auto' }))), undefined)
  t.equal(refusedParam(() => checkChatFields(chat({ tool_choice: 'required' }))), 'tool_choice')
  t.equal(refusedParam(() => checkChatFields(chat({ response_format: { type: 'text' } }))), undefined)
  t.equal(refusedParam(() => checkChatFields(chat({ response_format: { type: 'json_object' } }))), 'response_format')
  t.equal(refusedParam(() => checkChatFields(chat({ store: false }))), undefined)
  t.equal(refusedParam(() => checkChatFields(chat({ store: true }))), 'store')
})

t.test("OpenAI's small vocabulary: stop lists, finish reasons, usage", async (t) => {
  t.same(stopList(undefined), [])
  t.same(stopList(null), [])
  t.same(stopList('\n'), ['\n'])
  t.same(stopList(['a', 'b']), ['a', 'b'])
  t.equal(finishReason('length'), 'length')
  t.equal(finishReason('eos_token'), 'stop', 'the end of text is a stop')
  t.equal(finishReason('stop_sequence'), 'stop')
  t.same(usage(7, [{ tokens: [1, 2, 3] }, { tokens: [4] }]), { prompt_tokens: 7, completion_tokens: 4, total_tokens: 11 }, 'the prompt counted once, choices summed')
  t.same(usage(5, []), { prompt_tokens: 5, completion_tokens: 0, total_tokens: 5 })
})

t.test('logprobs, legacy completions format', async (t) => {
  const tokens: Token[] = [
    { id: 5, text: ' dog', logprob: -0.5, special: false, top: [{ id: 6, text: ' cat', logprob: -1.5 }, { id: 5, text: ' dog', logprob: -0.5 }] },
    { id: 7, text: 's', logprob: -2, special: false, top: [{ id: 8, text: '!', logprob: -0.1 }, { id: 9, text: '!', logprob: -0.2 }] },
    { id: 10, text: '.', logprob: -0.25, special: false },
  ]
  t.same(completionLogprobs(tokens, 4), {
    tokens: [' dog', 's', '.'],
    token_logprobs: [-0.5, -2, -0.25],
    // The alternatives and always the chosen token (k + 1 entries at most); a repeated text keeps its first value.
    top_logprobs: [{ ' cat': -1.5, ' dog': -0.5 }, { '!': -0.1, s: -2 }, { '.': -0.25 }],
    text_offset: [4, 8, 9],
  }, 'offsets count from where the generated text starts')

  // With echo: the prompt's tokens first, the first unscored.
  const prompt: PromptToken[] = [
    { id: 1, text: '', logprob: null },
    { id: 2, text: 'Once', logprob: -3, top: [{ id: 3, text: 'The', logprob: -1 }] },
  ]
  t.same(completionLogprobs(tokens.slice(0, 1), 0, prompt), {
    tokens: ['', 'Once', ' dog'],
    token_logprobs: [null, -3, -0.5],
    top_logprobs: [null, { The: -1, Once: -3 }, { ' cat': -1.5, ' dog': -0.5 }],
    text_offset: [0, 0, 4],
  })
  t.same(completionLogprobs([], 0), { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] })
})

t.test('logprobs, chat format: UTF-8 bytes and the alternatives', async (t) => {
  const tokens: Token[] = [
    { id: 1, text: 'caf', logprob: -1, special: false },
    { id: 2, text: 'é', logprob: -0.75, special: false, top: [{ id: 2, text: 'é', logprob: -0.75 }, { id: 3, text: '€', logprob: -2 }] },
  ]
  t.same(chatLogprobs(tokens), {
    content: [
      { token: 'caf', logprob: -1, bytes: [99, 97, 102], top_logprobs: [] },
      {
        token: 'é',
        logprob: -0.75,
        bytes: [0xc3, 0xa9],
        top_logprobs: [
          { token: 'é', logprob: -0.75, bytes: [0xc3, 0xa9] },
          { token: '€', logprob: -2, bytes: [0xe2, 0x82, 0xac] },
        ],
      },
    ],
  })
})
