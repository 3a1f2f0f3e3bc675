/**
 * Multipart uploads to /prefixes through app.inject (light-my-request streams
 * a FormData as a real multipart body), and the files of an adapter folder.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildPeftAdapter } from './prefix-fixtures.js'

export type UploadFiles = Record<string, Buffer | string>

export function uploadForm(files: UploadFiles, fields: Record<string, string> = {}): FormData {
  const form = new FormData()
  for (const [name, value] of Object.entries(fields)) form.append(name, value)
  for (const [filename, data] of Object.entries(files)) form.append('file', new Blob([typeof data === 'string' ? data : new Uint8Array(data)]), filename)
  return form
}

export interface UploadReply {
  status: number
  body: Record<string, unknown> & { error?: string; error_type?: string }
}

export async function upload(
  app: FastifyInstance,
  method: 'POST' | 'PUT',
  url: string,
  files: UploadFiles,
  fields: Record<string, string> = {},
): Promise<UploadReply> {
  const res = await app.inject({ method, url, payload: uploadForm(files, fields) })
  return { status: res.statusCode, body: res.json() }
}

/**
 * A PEFT prefix adapter shaped for the generated tiny llama (2 layers, 2
 * key/value heads of size 16), as upload files. Different seeds steer greedy
 * decoding differently.
 */
export function tinyLlamaAdapterFiles(seed: number, virtualTokens: number): UploadFiles {
  const a = buildPeftAdapter({ layers: 2, kvHeads: 2, headDim: 16, P: virtualTokens, seed })
  return { 'adapter_config.json': a.configJson, 'adapter_model.safetensors': a.safetensors }
}

/** adapter_config.json and adapter_model.safetensors of a PEFT adapter folder. */
export function peftFolderFiles(dir: string): UploadFiles {
  return {
    'adapter_config.json': readFileSync(join(dir, 'adapter_config.json')),
    'adapter_model.safetensors': readFileSync(join(dir, 'adapter_model.safetensors')),
  }
}
