/**
 * The prefix store over REST: upload (POST, multipart), replace (PUT), list,
 * read, download and delete. Uploads are read whole (each file bounded by
 * MAX_PREFIX_FILE_BYTES while it streams in) and validated completely before
 * anything is stored; a refused upload leaves nothing behind.
 */
import multipart from '@fastify/multipart'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import Type from 'typebox'
import { errorTypeOf } from '../../domain/error-table.js'
import { PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError } from '../../errors.js'
import { isValidPrefixId, PREFIX_ID_RULE } from '../../domain/prefix-id.js'
import type { Upload } from '../../prefixes/store/prefix-store.js'
import type { UploadedFile } from '../../prefixes/store/upload-conversion.js'
import { IdParams, ListQuery, PrefixList, PrefixMetadata, storeErrors } from '../schemas/prefixes.js'

const MAX_DESCRIPTION_CHARS = 1024
const UPLOAD_FIELDS = new Set(['id', 'description', 'visibility'])

interface ParsedUpload extends Upload {
  id?: string
}

/** Collects the multipart body: its files (bounded in size) and its text fields. */
async function readUpload(request: FastifyRequest, maxFileBytes: number): Promise<ParsedUpload> {
  if (!request.isMultipart()) {
    throw new UnsupportedMediaTypeError('a prefix upload must be multipart/form-data: file parts plus the fields id and description')
  }
  const files: UploadedFile[] = []
  const fields: Record<string, string> = {}
  for await (const part of request.parts()) {
    if (part.type === 'file') {
      // Only the base name counts: a client's path says nothing about the file.
      const filename = (part.filename || part.fieldname).split(/[\\/]/).pop() ?? ''
      try {
        files.push({ filename, data: await part.toBuffer() })
      } catch (err) {
        if ((err as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') {
          throw new PayloadTooLargeError(`'${filename}' is over the limit of ${maxFileBytes} bytes (MAX_PREFIX_FILE_BYTES)`)
        }
        throw err
      }
      continue
    }
    if (!UPLOAD_FIELDS.has(part.fieldname)) {
      throw new ValidationError(`unknown field '${part.fieldname}'; an upload has file parts and the fields id, description and visibility`)
    }
    if (part.valueTruncated) throw new ValidationError(`field '${part.fieldname}' is too long`)
    fields[part.fieldname] = String(part.value)
  }
  const description = fields.description
  if (description !== undefined && description.length > MAX_DESCRIPTION_CHARS) {
    throw new ValidationError(`description is ${description.length} characters long; the limit is ${MAX_DESCRIPTION_CHARS}`)
  }
  if (files.length === 0) throw new ValidationError('the upload has no files: send a PEFT adapter (adapter_config.json + adapter_model.safetensors) or prefix.safetensors')
  const upload: ParsedUpload = { files }
  if (description !== undefined) upload.description = description
  if (fields.visibility !== undefined) {
    if (fields.visibility !== 'public' && fields.visibility !== 'private') {
      throw new ValidationError(`visibility must be public or private, not ${JSON.stringify(fields.visibility)}`)
    }
    upload.visibility = fields.visibility
  }
  if (fields.id !== undefined) upload.id = fields.id
  return upload
}

function checkId(id: string | undefined): string {
  if (id === undefined) throw new ValidationError("the upload lacks the field 'id'")
  if (!isValidPrefixId(id)) {
    throw new ValidationError(`id ${JSON.stringify(id)} is not a valid prefix id: ${PREFIX_ID_RULE}`)
  }
  return id
}

export const prefixRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const maxFileBytes = app.config.MAX_PREFIX_FILE_BYTES
  /** Uploads and replacements by outcome: success, or the error type. */
  const countUpload = async <T>(write: () => Promise<T>): Promise<T> => {
    try {
      const result = await write()
      app.metrics.uploads.inc({ outcome: 'success' })
      return result
    } catch (err) {
      app.metrics.uploads.inc({ outcome: errorTypeOf((err as { code?: string }).code) })
      throw err
    }
  }
  await app.register(multipart, {
    limits: { fileSize: maxFileBytes, files: 4, fields: 4, parts: 8, fieldSize: 16 * 1024 },
  })

  app.post(
    '/prefixes',
    { schema: { summary: 'Upload a new prefix (multipart: PEFT adapter files or prefix.safetensors, id, description)', response: { 201: PrefixMetadata, ...storeErrors } } },
    async (request, reply) => {
      const record = await countUpload(async () => {
        const upload = await readUpload(request, maxFileBytes)
        return app.prefixStore.create(checkId(upload.id), upload, request.principal)
      })
      return reply.code(201).send(record)
    },
  )

  app.put(
    '/prefixes/:id',
    {
      schema: {
        summary: 'Store a new version of an existing prefix; requests already running keep the old one',
        params: IdParams,
        response: { 200: PrefixMetadata, ...storeErrors },
      },
    },
    async (request, reply) => {
      const record = await countUpload(async () => {
        const upload = await readUpload(request, maxFileBytes)
        if (upload.id !== undefined && upload.id !== request.params.id) {
          throw new ValidationError(`the field id '${upload.id}' differs from the URL's '${request.params.id}'; leave it out`)
        }
        return app.prefixStore.replace(request.params.id, upload, request.principal)
      })
      return reply.code(200).send(record)
    },
  )

  app.get(
    '/prefixes',
    { schema: { summary: 'List prefixes by id, a page at a time', querystring: ListQuery, response: { 200: PrefixList, ...storeErrors } } },
    async (request) => {
      const limit = request.query.limit === undefined ? 100 : Number(request.query.limit)
      const { records, nextCursor } = await app.prefixStore.list(request.query.cursor ?? null, limit, request.principal)
      return { prefixes: records, next_cursor: nextCursor }
    },
  )

  app.get(
    '/prefixes/:id',
    { schema: { summary: "A prefix's metadata", params: IdParams, response: { 200: PrefixMetadata, ...storeErrors } } },
    async (request) => app.prefixStore.get(request.params.id, request.principal),
  )

  app.get(
    '/prefixes/:id/download',
    {
      schema: {
        summary: 'The stored native prefix file (safetensors); the ETag is its sha256',
        params: IdParams,
        response: { 200: Type.Unsafe<Buffer>({ type: 'string', format: 'binary' }), 304: Type.Null(), ...storeErrors },
      },
    },
    async (request, reply) => {
      const { record, blob } = await app.prefixStore.download(request.params.id, request.principal)
      const etag = `"${record.sha256}"`
      void reply.header('etag', etag)
      if (request.headers['if-none-match'] === etag) return reply.code(304).send(null)
      return reply
        .type('application/octet-stream')
        .header('content-disposition', `attachment; filename="${record.id}.safetensors"`)
        .header('x-prefix-version', String(record.version))
        .send(blob)
    },
  )

  app.delete(
    '/prefixes/:id',
    { schema: { summary: 'Delete a prefix; requests already running finish on it', params: IdParams, response: { 204: Type.Null(), ...storeErrors } } },
    async (request, reply) => {
      await app.prefixStore.remove(request.params.id, request.principal)
      // A deleted prefix's metric series go with it.
      app.metrics.forgetPrefix(request.params.id)
      return reply.code(204).send(null)
    },
  )
}
