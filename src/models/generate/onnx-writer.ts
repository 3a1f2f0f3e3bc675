import { open, rename, type FileHandle } from 'node:fs/promises'
import { create, toBinary } from '@bufbuild/protobuf'
import { basename } from 'node:path'
import {
  GraphProtoSchema,
  ModelProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProtoSchema,
} from 'onnx-buf'
import type { GraphBuilder, LazyInitializer } from './onnx-graph-builder.js'

/** The opset of the default domain the graphs are written for (the PyTorch exporter's default too). */
export const OPSET_VERSION = 17
/** IR version 8 is the one that goes with opset 17. */
const IR_VERSION = 8n

// Protobuf field numbers (onnx.proto) of the messages the writer frames by hand.
const MODEL_GRAPH_FIELD = 7
const GRAPH_INITIALIZER_FIELD = 5
const TENSOR_RAW_DATA_FIELD = 9
const LENGTH_DELIMITED = 2

function varint(value: number): Uint8Array {
  const bytes: number[] = []
  let rest = value
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80)
    rest = Math.floor(rest / 0x80)
  }
  bytes.push(rest)
  return Uint8Array.from(bytes)
}

function fieldPrefix(field: number, length: number): Uint8Array {
  const tag = varint((field << 3) | LENGTH_DELIMITED)
  const len = varint(length)
  const out = new Uint8Array(tag.length + len.length)
  out.set(tag)
  out.set(len, tag.length)
  return out
}

interface FramedInitializer {
  /** Everything before the raw bytes: graph field prefix, tensor header, raw_data prefix. */
  head: Uint8Array
  source: LazyInitializer
  /** Where the bytes go in the external data file; undefined: inline, after head. */
  externalOffset?: number
}

/** Tensors smaller than this stay inline, as onnx's own external-data writer does by default. */
const EXTERNAL_THRESHOLD = 1024

/** An initializer whose bytes live at [offset, offset + length) of an external data file. */
function frameExternal(initializer: LazyInitializer, location: string, offset: number): FramedInitializer {
  const entry = (key: string, value: string) => create(StringStringEntryProtoSchema, { key, value })
  const tensor = create(TensorProtoSchema, {
    name: initializer.name,
    dims: initializer.dims.map(BigInt),
    dataType: initializer.dataType,
    dataLocation: TensorProto_DataLocation.EXTERNAL,
    externalData: [entry('location', location), entry('offset', String(offset)), entry('length', String(initializer.byteLength))],
  })
  const header = toBinary(TensorProtoSchema, tensor)
  const graphPrefix = fieldPrefix(GRAPH_INITIALIZER_FIELD, header.length)
  const head = new Uint8Array(graphPrefix.length + header.length)
  head.set(graphPrefix)
  head.set(header, graphPrefix.length)
  return { head, source: initializer, externalOffset: offset }
}

function frame(initializer: LazyInitializer): FramedInitializer {
  const header = toBinary(
    TensorProtoSchema,
    create(TensorProtoSchema, { name: initializer.name, dims: initializer.dims.map(BigInt), dataType: initializer.dataType }),
  )
  const rawPrefix = fieldPrefix(TENSOR_RAW_DATA_FIELD, initializer.byteLength)
  const tensorLength = header.length + rawPrefix.length + initializer.byteLength
  const graphPrefix = fieldPrefix(GRAPH_INITIALIZER_FIELD, tensorLength)
  const head = new Uint8Array(graphPrefix.length + header.length + rawPrefix.length)
  head.set(graphPrefix)
  head.set(header, graphPrefix.length)
  head.set(rawPrefix, graphPrefix.length + header.length)
  return { head, source: initializer }
}

/**
 * Writes the graph as model.onnx. Protobuf lets a message's fields arrive in
 * any order and repeated fields in several pieces, so the file is the model
 * header, then the graph framed by hand: its nodes and value infos serialized
 * by @bufbuild/protobuf, then one initializer at a time with its raw bytes
 * streamed straight from the weight arrays. Peak memory stays at the weights
 * themselves, where building one ModelProto would copy them two or three times.
 * The file appears under its final name only once complete.
 */
export interface WriteOptions {
  /** Weights of 1 KB and more go to `<file name>_data` beside the graph (ONNX external data). */
  externalData?: boolean
}

export async function writeOnnxModel(
  path: string,
  graph: GraphBuilder,
  onProgress?: (bytesWritten: number, totalBytes: number) => void,
  opts: WriteOptions = {},
): Promise<number> {
  const model = create(ModelProtoSchema, {
    irVersion: IR_VERSION,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(OPSET_VERSION) })],
    producerName: 'prefixd-generate',
    producerVersion: '1',
  })
  const modelBytes = toBinary(ModelProtoSchema, model)
  const graphBytes = toBinary(GraphProtoSchema, graph.graphWithoutInitializers('prefixd'))
  const dataPath = `${path}_data`
  let dataBytes = 0
  const framed = graph.initializers.map((init) => {
    if (!opts.externalData || init.byteLength < EXTERNAL_THRESHOLD) return frame(init)
    const f = frameExternal(init, basename(dataPath), dataBytes)
    dataBytes += init.byteLength
    return f
  })
  const inline = (f: FramedInitializer): number => (f.externalOffset === undefined ? f.source.byteLength : 0)
  const graphLength = framed.reduce((sum, f) => sum + f.head.length + inline(f), graphBytes.length)
  const graphPrefix = fieldPrefix(MODEL_GRAPH_FIELD, graphLength)
  const totalBytes = modelBytes.length + graphPrefix.length + graphLength + dataBytes

  const partial = `${path}.partial`
  const file = await open(partial, 'w')
  const data = dataBytes > 0 ? await open(`${dataPath}.partial`, 'w') : undefined
  let written = 0
  const write = async (to: FileHandle, bytes: Uint8Array): Promise<void> => {
    let offset = 0
    while (offset < bytes.length) {
      const { bytesWritten } = await to.write(bytes, offset, bytes.length - offset)
      offset += bytesWritten
    }
    written += bytes.length
  }
  try {
    await write(file, modelBytes)
    await write(file, graphPrefix)
    await write(file, graphBytes)
    for (const f of framed) {
      await write(file, f.head)
      const bytes = f.source.bytes()
      if (bytes.length !== f.source.byteLength) throw new Error(`initializer ${f.source.name}: ${bytes.length} bytes, expected ${f.source.byteLength}`)
      // External tensors are written in offset order, so appending puts each at its offset.
      await write(f.externalOffset === undefined ? file : data!, bytes)
      onProgress?.(written, totalBytes)
    }
  } finally {
    await file.close()
    await data?.close()
  }
  if (data) await rename(`${dataPath}.partial`, dataPath)
  await rename(partial, path)
  return totalBytes
}
