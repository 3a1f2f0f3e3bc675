/**
 * ONNX Runtime's C API, reached through koffi (an FFI with prebuilt binaries
 * on npm: nothing is compiled or downloaded at install), on the library that
 * onnxruntime-node already ships. Only what capi-session.ts needs.
 *
 * Why at all: onnxruntime-node cannot bind an output to a caller's buffer (it
 * copies every output into a new one), and the engine's fastest decode keeps
 * the key/value cache where the graph writes it (docs/performance.md).
 *
 * The functions are found by their position in OrtApi, the C API's table.
 * ONNX Runtime only ever appends to it (onnxruntime_c_api.cc freezes each
 * version's entries), and every one used here dates from version 5 or
 * earlier, so the positions hold for the 1.30 library and later ones.
 */
import koffi, { type LibraryHandle } from 'koffi'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const TABLE = {
  GetErrorMessage: 2,
  CreateEnv: 3,
  CreateSession: 7,
  CreateSessionFromArray: 8,
  CreateSessionOptions: 10,
  SetSessionGraphOptimizationLevel: 23,
  SetIntraOpNumThreads: 24,
  SetInterOpNumThreads: 25,
  SessionGetInputCount: 30,
  SessionGetOutputCount: 31,
  SessionGetInputTypeInfo: 33,
  SessionGetOutputTypeInfo: 34,
  SessionGetInputName: 36,
  SessionGetOutputName: 37,
  CreateTensorWithDataAsOrtValue: 49,
  GetTensorMutableData: 51,
  CastTypeInfoToTensorInfo: 55,
  GetOnnxTypeFromTypeInfo: 56,
  GetTensorElementType: 60,
  GetDimensionsCount: 61,
  GetDimensions: 62,
  GetSymbolicDimensions: 63,
  GetTensorTypeAndShape: 65,
  CreateCpuMemoryInfo: 69,
  AllocatorFree: 76,
  GetAllocatorWithDefaultOptions: 78,
  ReleaseStatus: 93,
  ReleaseSession: 95,
  ReleaseValue: 96,
  ReleaseTypeInfo: 98,
  ReleaseTensorTypeAndShapeInfo: 99,
  ReleaseSessionOptions: 100,
  AddSessionConfigEntry: 130,
  RunWithBinding: 133,
  CreateIoBinding: 134,
  ReleaseIoBinding: 135,
  BindInput: 136,
  BindOutput: 137,
  BindOutputToDevice: 138,
  GetBoundOutputValues: 140,
  ClearBoundInputs: 141,
  ClearBoundOutputs: 142,
} as const

export type ApiFunction = keyof typeof TABLE
/** An opaque pointer the library handed out (koffi's external). */
export type Handle = unknown
type Native = (...args: unknown[]) => unknown

/** Any version up to the library's own returns the same table; 17 is ONNX Runtime 1.17's. */
const API_VERSION = 17

/** Where onnxruntime-node keeps its library, or null where this module does not know. */
export function bundledLibraryPath(): string | null {
  if (process.platform !== 'linux' || (process.arch !== 'x64' && process.arch !== 'arm64')) return null
  const root = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'))
  return join(root, 'bin', 'napi-v6', 'linux', process.arch, 'libonnxruntime.so.1')
}

export class OrtCApi {
  readonly version: string
  /**
   * Held for the process's life: koffi unloads a library once nothing refers
   * to it, and the functions below, found through the table, do not. Where
   * onnxruntime-node has not loaded the same file, a collection would unmap
   * ONNX Runtime under the sessions (seen: a crash, or "DefaultLogger"
   * errors once onnxruntime-node maps it afresh).
   */
  private readonly library: LibraryHandle
  private readonly table: unknown
  private readonly fns = new Map<ApiFunction, Native>()

  constructor(path: string) {
    this.library = koffi.load(path)
    const base = this.library.func('void *OrtGetApiBase()')() as unknown
    const getApi = koffi.decode(koffi.decode(base, 0, 'void *'), koffi.proto('void *OrtGetApi(uint32_t version)')) as Native
    const getVersion = koffi.decode(koffi.decode(base, 8, 'void *'), koffi.proto('const char *OrtGetVersionString()')) as Native
    this.version = getVersion() as string
    this.table = getApi(API_VERSION)
    if (!this.table) throw new Error(`${path} does not offer ONNX Runtime's C API version ${API_VERSION}`)
  }

  /** The table's function `name`, typed by a C prototype written as `ret F(params)`. */
  fn(name: ApiFunction, prototype: string): Native {
    let f = this.fns.get(name)
    if (!f) {
      const pointer = koffi.decode(this.table, TABLE[name] * koffi.sizeof('void *'), 'void *')
      f = koffi.decode(pointer, koffi.proto(prototype.replace('F(', `Ort${name}(`))) as Native
      this.fns.set(name, f)
    }
    return f
  }

  /** Throws an OrtStatus that is not success (null) as an Error with its message, releasing it. */
  check(status: unknown): void {
    if (!status) return
    const message = this.fn('GetErrorMessage', 'const char *F(void *status)')(status) as string
    this.fn('ReleaseStatus', 'void F(void *status)')(status)
    throw new Error(message)
  }

  /** Calls a status-returning function whose last parameter is an output, and returns what it wrote there. */
  out(name: ApiFunction, prototype: string, ...args: unknown[]): unknown {
    const out: unknown[] = [null]
    this.check(this.fn(name, prototype)(...args, out))
    return out[0]
  }
}

/** The process's one library, environment and CPU memory description, made on first use. */
export interface CApiRuntime {
  api: OrtCApi
  env: Handle
  cpu: Handle
  allocator: Handle
}

let runtime: CApiRuntime | null = null

/** Loads the C API from onnxruntime-node's library; throws where it cannot (unknown platform, missing file). */
export function cApiRuntime(): CApiRuntime {
  if (runtime) return runtime
  const path = bundledLibraryPath()
  if (path === null) throw new Error(`no bundled ONNX Runtime library is known for ${process.platform}-${process.arch}`)
  const api = new OrtCApi(path)
  const env = api.out('CreateEnv', 'void *F(int severity, const char *logid, _Out_ void **env)', 3, 'prefixd')
  const cpu = api.out('CreateCpuMemoryInfo', 'void *F(int allocator, int memType, _Out_ void **info)', 0, 0)
  const allocator = api.out('GetAllocatorWithDefaultOptions', 'void *F(_Out_ void **allocator)')
  runtime = { api, env, cpu, allocator }
  return runtime
}
