/**
 * A session through ONNX Runtime's C API (ort-c-api.ts): the engine's
 * PassSession on the CPU when the C API loads. Inputs are bound where their
 * buffers are; an output the caller gives a buffer for is written there by
 * the graph itself (IO binding); any other output is allocated by ONNX
 * Runtime and copied out once, as onnxruntime-node would.
 */
import koffi from 'koffi'
import type * as ort from 'onnxruntime-node'
import type { TensorMeta } from './tensor-meta.js'
import type { PassOutputs, PassSession } from './pass-session.js'
import { cApiRuntime, type CApiRuntime, type Handle } from './ort-c-api.js'

type ElementType = ort.Tensor['type']
type TypedArrayClass = new (buffer: ArrayBuffer) => ort.Tensor['data']

/**
 * ONNXTensorElementDataType: the tensor element types the engine's graphs use,
 * with their array class and koffi's name for the element (koffi.decode copies
 * n of them into that array class).
 */
const ELEMENTS: ReadonlyArray<{ id: number; type: ElementType; array: TypedArrayClass; native: string }> = [
  { id: 1, type: 'float32', array: Float32Array, native: 'float' },
  { id: 2, type: 'uint8', array: Uint8Array, native: 'uint8_t' },
  { id: 3, type: 'int8', array: Int8Array, native: 'int8_t' },
  { id: 4, type: 'uint16', array: Uint16Array, native: 'uint16_t' },
  { id: 5, type: 'int16', array: Int16Array, native: 'int16_t' },
  { id: 6, type: 'int32', array: Int32Array, native: 'int32_t' },
  { id: 7, type: 'int64', array: BigInt64Array, native: 'int64_t' },
  { id: 9, type: 'bool', array: Uint8Array, native: 'uint8_t' },
  { id: 10, type: 'float16', array: Uint16Array, native: 'uint16_t' },
  { id: 11, type: 'float64', array: Float64Array, native: 'double' },
  { id: 12, type: 'uint32', array: Uint32Array, native: 'uint32_t' },
  { id: 13, type: 'uint64', array: BigUint64Array, native: 'uint64_t' },
]
const byType = new Map(ELEMENTS.map((e) => [e.type, e]))
const byId = new Map(ELEMENTS.map((e) => [e.id, e]))
const ORT_ENABLE_ALL = 99
const ONNX_TYPE_TENSOR = 1

export interface CApiSessionOptions {
  /** 0: ONNX Runtime's default (one per core). */
  intraOpThreads: number
  /** Session config entries (key, value), e.g. where external weights are. */
  configEntries?: ReadonlyArray<[string, string]>
}

export class CApiSession implements PassSession {
  readonly bindsOutputs = true
  readonly inputMetadata: TensorMeta[]
  readonly outputMetadata: TensorMeta[]
  private released = false
  /** A tensor's dims for CreateTensorWithDataAsOrtValue, which copies them: one array reused (a new one per tensor cost more than binding it). */
  private dims = new BigInt64Array(8)

  private constructor(
    private readonly rt: CApiRuntime,
    private readonly session: Handle,
    private readonly binding: Handle,
  ) {
    this.inputMetadata = this.metadata('Input')
    this.outputMetadata = this.metadata('Output')
  }

  /** The library's version, e.g. "1.30.0". */
  static libraryVersion(): string {
    return cApiRuntime().api.version
  }

  /** A session on a model file or its bytes, with the engine's options: all graph optimizations, one inter-op thread. */
  static create(model: string | Uint8Array, opts: CApiSessionOptions): CApiSession {
    const rt = cApiRuntime()
    const { api } = rt
    const options = api.out('CreateSessionOptions', 'void *F(_Out_ void **options)')
    try {
      api.check(api.fn('SetSessionGraphOptimizationLevel', 'void *F(void *options, int level)')(options, ORT_ENABLE_ALL))
      // One forward pass at a time: parallelism comes from the batch, inside each op.
      api.check(api.fn('SetInterOpNumThreads', 'void *F(void *options, int threads)')(options, 1))
      if (opts.intraOpThreads > 0) api.check(api.fn('SetIntraOpNumThreads', 'void *F(void *options, int threads)')(options, opts.intraOpThreads))
      const addEntry = api.fn('AddSessionConfigEntry', 'void *F(void *options, const char *key, const char *value)')
      for (const [key, value] of opts.configEntries ?? []) api.check(addEntry(options, key, value))
      const session =
        typeof model === 'string'
          ? api.out('CreateSession', 'void *F(void *env, const char *path, void *options, _Out_ void **session)', rt.env, model, options)
          : api.out('CreateSessionFromArray', 'void *F(void *env, const void *model, size_t length, void *options, _Out_ void **session)', rt.env, model, model.byteLength, options)
      const binding = api.out('CreateIoBinding', 'void *F(void *session, _Out_ void **binding)', session)
      return new CApiSession(rt, session, binding)
    } finally {
      api.fn('ReleaseSessionOptions', 'void F(void *options)')(options)
    }
  }

  async run(feeds: Record<string, ort.Tensor>, fetches: readonly string[], into: Record<string, ort.Tensor> = {}): Promise<PassOutputs> {
    const { api, cpu, allocator } = this.rt
    const wrapped: Handle[] = []
    const wrap = (t: ort.Tensor): Handle => {
      const element = byType.get(t.type)
      if (!element) throw new Error(`tensors of type ${t.type} are not supported`)
      const data = t.data as ArrayBufferView
      const value = api.out(
        'CreateTensorWithDataAsOrtValue',
        'void *F(void *info, void *data, size_t length, const int64_t *dims, size_t rank, int type, _Out_ void **value)',
        cpu,
        data,
        data.byteLength,
        this.dimsOf(t),
        t.dims.length,
        element.id,
      )
      wrapped.push(value)
      return value
    }
    try {
      const bindInput = api.fn('BindInput', 'void *F(void *binding, const char *name, void *value)')
      for (const [name, t] of Object.entries(feeds)) api.check(bindInput(this.binding, name, wrap(t)))
      const bindOutput = api.fn('BindOutput', 'void *F(void *binding, const char *name, void *value)')
      const bindToCpu = api.fn('BindOutputToDevice', 'void *F(void *binding, const char *name, void *info)')
      for (const name of fetches) api.check(into[name] ? bindOutput(this.binding, name, wrap(into[name])) : bindToCpu(this.binding, name, cpu))
      api.check(api.fn('RunWithBinding', 'void *F(void *session, void *runOptions, void *binding)')(this.session, null, this.binding))
      const results: PassOutputs = {}
      if (fetches.length === 0) return results
      // Every bound output, in the order bound; each a reference of its own to release.
      const list: unknown[] = [null]
      api.check(api.fn('GetBoundOutputValues', 'void *F(void *binding, void *allocator, _Out_ void **values, _Out_ size_t *count)')(this.binding, allocator, list, [0]))
      const values = fetches.map((_, i) => koffi.decode(list[0], i * koffi.sizeof('void *'), 'void *') as Handle)
      try {
        fetches.forEach((name, i) => (results[name] = { data: into[name] ? into[name].data : this.copyOut(values[i]) }))
      } finally {
        const release = api.fn('ReleaseValue', 'void F(void *value)')
        for (const value of values) release(value)
        api.check(api.fn('AllocatorFree', 'void *F(void *allocator, void *p)')(allocator, list[0]))
      }
      return results
    } finally {
      api.fn('ClearBoundInputs', 'void F(void *binding)')(this.binding)
      api.fn('ClearBoundOutputs', 'void F(void *binding)')(this.binding)
      const release = api.fn('ReleaseValue', 'void F(void *value)')
      for (const value of wrapped) release(value)
    }
  }

  async release(): Promise<void> {
    if (this.released) return
    this.released = true
    this.rt.api.fn('ReleaseIoBinding', 'void F(void *binding)')(this.binding)
    this.rt.api.fn('ReleaseSession', 'void F(void *session)')(this.session)
  }

  /** An output ONNX Runtime allocated, copied into a new array of its type. */
  private copyOut(value: Handle): ort.Tensor['data'] {
    const { api } = this.rt
    const info = api.out('GetTensorTypeAndShape', 'void *F(void *value, _Out_ void **info)', value)
    let element
    let dims: BigInt64Array
    try {
      ;({ element, dims } = this.describe(info))
    } finally {
      api.fn('ReleaseTensorTypeAndShapeInfo', 'void F(void *info)')(info)
    }
    const elements = dims.reduce((n, d) => n * Number(d), 1)
    if (elements === 0) return new element.array(new ArrayBuffer(0))
    const data = api.out('GetTensorMutableData', 'void *F(void *value, _Out_ void **data)', value)
    // koffi.decode copies straight into a new array: one buffer, and no external view for V8 to account for.
    return koffi.decode(data, element.native, elements) as ort.Tensor['data']
  }

  /** `t`'s dims as int64, in the reused array. */
  private dimsOf(t: ort.Tensor): BigInt64Array {
    if (t.dims.length > this.dims.length) this.dims = new BigInt64Array(t.dims.length)
    t.dims.forEach((d, axis) => (this.dims[axis] = BigInt(d)))
    return this.dims
  }

  /** Element type and dims of a tensor's type-and-shape info. */
  private describe(info: Handle): { element: (typeof ELEMENTS)[number]; dims: BigInt64Array } {
    const { api } = this.rt
    const id = Number(api.out('GetTensorElementType', 'void *F(void *info, _Out_ int *type)', info))
    const element = byId.get(id)
    if (!element) throw new Error(`tensors of ONNX element type ${id} are not supported`)
    const rank = Number(api.out('GetDimensionsCount', 'void *F(void *info, _Out_ size_t *count)', info))
    const dims = new BigInt64Array(rank)
    api.check(api.fn('GetDimensions', 'void *F(void *info, void *dims, size_t count)')(info, dims, rank))
    return { element, dims }
  }

  /** The session's inputs or outputs as onnxruntime-node describes them (named symbolic dims as strings). */
  private metadata(kind: 'Input' | 'Output'): TensorMeta[] {
    const { api, allocator } = this.rt
    const count = Number(api.out(`SessionGet${kind}Count`, 'void *F(void *session, _Out_ size_t *count)', this.session))
    const metas: TensorMeta[] = []
    for (let i = 0; i < count; i++) {
      const namePointer = api.out(`SessionGet${kind}Name`, 'void *F(void *session, size_t index, void *allocator, _Out_ void **name)', this.session, i, allocator)
      const name = koffi.decode(namePointer, 'char', -1) as string
      api.check(api.fn('AllocatorFree', 'void *F(void *allocator, void *p)')(allocator, namePointer))
      const typeInfo = api.out(`SessionGet${kind}TypeInfo`, 'void *F(void *session, size_t index, _Out_ void **info)', this.session, i)
      try {
        metas.push({ name, ...this.tensorMeta(typeInfo) })
      } finally {
        api.fn('ReleaseTypeInfo', 'void F(void *info)')(typeInfo)
      }
    }
    return metas
  }

  private tensorMeta(typeInfo: Handle): Omit<TensorMeta, 'name'> {
    const { api } = this.rt
    const onnxType = Number(api.out('GetOnnxTypeFromTypeInfo', 'void *F(void *info, _Out_ int *type)', typeInfo))
    if (onnxType !== ONNX_TYPE_TENSOR) return { isTensor: false }
    // Owned by the type info: not released on its own.
    const info = api.out('CastTypeInfoToTensorInfo', 'void *F(void *info, _Out_ void **tensorInfo)', typeInfo)
    const { element, dims } = this.describe(info)
    const names = new BigUint64Array(dims.length)
    api.check(api.fn('GetSymbolicDimensions', 'void *F(void *info, void *names, size_t count)')(info, names, dims.length))
    const shape = Array.from(dims, (d, axis) => {
      const symbol = koffi.decode(names, axis * 8, 'const char *') as string | null
      return symbol ? symbol : Number(d)
    })
    return { isTensor: true, type: element.type, shape }
  }
}
