import { create } from '@bufbuild/protobuf'
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  GraphProtoSchema,
  NodeProtoSchema,
  TensorProto_DataType,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type GraphProto,
  type NodeProto,
  type ValueInfoProto,
} from 'onnx-buf'

/**
 * An initializer whose bytes are produced only when the writer reaches it, so
 * that a 440 MB model never needs a second in-memory copy of its weights.
 */
export interface LazyInitializer {
  name: string
  dims: number[]
  dataType: TensorProto_DataType
  byteLength: number
  bytes: () => Uint8Array
}

/** A float attribute; plain numbers are written as INT attributes. */
export interface FloatAttribute {
  float: number
}

export type AttributeValue = number | number[] | FloatAttribute

export function float(value: number): FloatAttribute {
  return { float: value }
}

function attribute(name: string, value: AttributeValue): AttributeProto {
  if (Array.isArray(value)) {
    return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: value.map(BigInt) })
  }
  if (typeof value === 'number') {
    return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(value) })
  }
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f: value.float })
}

export function bytesOf(array: Float32Array | BigInt64Array): Uint8Array {
  // ONNX raw_data is little-endian, as are the typed arrays on every platform Node supports.
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength)
}

function valueInfo(name: string, elemType: TensorProto_DataType, dims: (number | string)[]): ValueInfoProto {
  const dim = dims.map((d) =>
    create(TensorShapeProto_DimensionSchema, {
      value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d },
    }),
  )
  const tensorType = create(TypeProto_TensorSchema, { elemType, shape: create(TensorShapeProtoSchema, { dim }) })
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensorType } }),
  })
}

/** Collects the nodes, inputs, outputs and initializers of one ONNX graph. */
export class GraphBuilder {
  readonly nodes: NodeProto[] = []
  readonly inputs: ValueInfoProto[] = []
  readonly outputs: ValueInfoProto[] = []
  readonly initializers: LazyInitializer[] = []
  private readonly constants = new Map<string, string>()
  private counter = 0

  /** `prefix` starts every name the builder makes, so two graphs can share one model (the merged decoder's branches). */
  constructor(private readonly prefix = '') {}

  input(name: string, elemType: TensorProto_DataType, dims: (number | string)[]): string {
    this.inputs.push(valueInfo(name, elemType, dims))
    return name
  }

  output(name: string, elemType: TensorProto_DataType, dims: (number | string)[]): void {
    this.outputs.push(valueInfo(name, elemType, dims))
  }

  initializer(name: string, dims: number[], dataType: TensorProto_DataType, byteLength: number, bytes: () => Uint8Array): string {
    this.initializers.push({ name, dims, dataType, byteLength, bytes })
    return name
  }

  floatInitializer(name: string, dims: number[], data: Float32Array): string {
    return this.initializer(name, dims, TensorProto_DataType.FLOAT, data.byteLength, () => bytesOf(data))
  }

  /** A float constant (a scalar when dims is []), shared by every node that asks for the same one. */
  constFloat(values: number[], dims: number[] = []): string {
    return this.constant('f', values, dims, () => Float32Array.from(values))
  }

  /** An int64 constant (shapes, axes, indices), shared like constFloat. */
  constInt(values: number[], dims: number[] = [values.length]): string {
    return this.constant('i', values, dims, () => BigInt64Array.from(values.map(BigInt)))
  }

  private constant(kind: string, values: number[], dims: number[], make: () => Float32Array | BigInt64Array): string {
    const key = `${kind}[${dims.join(',')}]${values.join(',')}`
    const existing = this.constants.get(key)
    if (existing) return existing
    const data = make()
    const name = `${this.prefix}const_${this.constants.size}`
    const dataType = kind === 'f' ? TensorProto_DataType.FLOAT : TensorProto_DataType.INT64
    this.initializer(name, dims, dataType, data.byteLength, () => bytesOf(data))
    this.constants.set(key, name)
    return name
  }

  /**
   * Appends one node and returns its output names: `outputs` names them
   * explicitly (graph outputs), or says how many fresh names to make.
   */
  op(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}, outputs: string[] | number = 1): string[] {
    const id = this.counter++
    const outputNames = typeof outputs === 'number' ? Array.from({ length: outputs }, (_, k) => `${this.prefix}${opType}_${id}_out${k}`) : outputs
    this.nodes.push(
      create(NodeProtoSchema, {
        name: `${this.prefix}${opType}_${id}`,
        opType,
        input: inputs,
        output: outputNames,
        attribute: Object.entries(attributes).map(([name, value]) => attribute(name, value)),
      }),
    )
    return outputNames
  }

  /** op() for the common single-output node. */
  op1(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}, output?: string): string {
    return this.op(opType, inputs, attributes, output === undefined ? 1 : [output])[0]
  }

  /** The graph without its initializers, which the writer streams separately. */
  graphWithoutInitializers(name: string): GraphProto {
    return create(GraphProtoSchema, { name, node: this.nodes, input: this.inputs, output: this.outputs })
  }
}
