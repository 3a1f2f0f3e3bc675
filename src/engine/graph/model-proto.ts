/**
 * Reading and writing an ONNX ModelProto, for the graph rewrites prefixd
 * derives at model load (see derive-model.ts). Only the engine worker calls
 * this: the derived bytes go straight into the ONNX Runtime session.
 */
import { readFile } from 'node:fs/promises'
import { fromBinary, toBinary } from '@bufbuild/protobuf'
import { ModelProtoSchema, type ModelProto } from 'onnx-buf'

export async function readModelProto(file: string): Promise<ModelProto> {
  return fromBinary(ModelProtoSchema, await readFile(file))
}

export function encodeModelProto(model: ModelProto): Uint8Array {
  return toBinary(ModelProtoSchema, model)
}
