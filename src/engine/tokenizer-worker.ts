/**
 * A worker thread that only tokenizes prompts, so that a long prompt (a
 * 65,536-character one takes a quarter to half a second) never holds the HTTP
 * thread: /health and every other request keep being answered meanwhile.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { TextTokenizer } from './tokenizer.js'

export interface EncodeRequest {
  id: number
  text: string
}

export type EncodeReply = { id: number; ids: number[] } | { id: number; error: string }

const { modelDir, bosTokenId } = workerData as { modelDir: string; bosTokenId: number | null }
const tokenizer = await TextTokenizer.load(modelDir, bosTokenId)
const port = parentPort!
port.on('message', ({ id, text }: EncodeRequest) => {
  let reply: EncodeReply
  try {
    reply = { id, ids: tokenizer.encode(text) }
  } catch (err) {
    reply = { id, error: (err as Error).message }
  }
  port.postMessage(reply)
})
port.postMessage('ready')
