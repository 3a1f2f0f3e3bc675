import { open, rename } from 'node:fs/promises'
import { create, toBinary } from '@bufbuild/protobuf'
import { GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema, TensorProtoSchema } from 'onnx-buf'
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
export async function writeOnnxModel(
  path: string,
  graph: GraphBuilder,
  onProgress?: (bytesWritten: number, totalBytes: number) => void,
): Promise<number> {
  const model = create(ModelProtoSchema, {
    irVersion: IR_VERSION,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(OPSET_VERSION) })],
    producerName: 'prefixd-generate',
    producerVersion: '1',
  })
  const modelBytes = toBinary(ModelProtoSchema, model)
  const graphBytes = toBinary(GraphProtoSchema, graph.graphWithoutInitializers('prefixd'))
  const framed = graph.initializers.map(frame)
  const graphLength = framed.reduce((sum, f) => sum + f.head.length + f.source.byteLength, graphBytes.length)
  const graphPrefix = fieldPrefix(MODEL_GRAPH_FIELD, graphLength)
  const totalBytes = modelBytes.length + graphPrefix.length + graphLength

  const partial = `${path}.partial`
  const file = await open(partial, 'w')
  let written = 0
  const write = async (bytes: Uint8Array): Promise<void> => {
    let offset = 0
    while (offset < bytes.length) {
      const { bytesWritten } = await file.write(bytes, offset, bytes.length - offset)
      offset += bytesWritten
    }
    written += bytes.length
  }
  try {
    await write(modelBytes)
    await write(graphPrefix)
    await write(graphBytes)
    for (const { head, source } of framed) {
      await write(head)
      const bytes = source.bytes()
      if (bytes.length !== source.byteLength) throw new Error(`initializer ${source.name}: ${bytes.length} bytes, expected ${source.byteLength}`)
      await write(bytes)
      onProgress?.(written, totalBytes)
    }
  } finally {
    await file.close()
  }
  await rename(partial, path)
  return totalBytes
}
