/**
 * A full garbage collection of the calling thread's heap, between bench
 * variants (outside their timing; run.ts, settle()). The onnxruntime-node
 * bare loops allocate a new buffer for every output of every pass (about
 * 900 MB of them per run of the bench batch); collected whenever V8 chose,
 * that work could land in the next variant's time.
 */
import v8 from 'node:v8'
import vm from 'node:vm'

let gc: (() => void) | null = null

export function collectGarbage(): void {
  if (!gc) {
    // --expose-gc at run time, so that the bench's command line stays as it is.
    v8.setFlagsFromString('--expose-gc')
    gc = vm.runInNewContext('gc') as () => void
  }
  gc()
}
