/**
 * The bench variants that run in Python (python-reference.ts), started when
 * the interpreter has what each needs: onnxruntime for the bare loop on the
 * same file, torch + transformers + peft for the PEFT rows. What is missing is
 * reported as skipped, with the install line from bench/README.md.
 */
import type { Throughput } from './engine-batch.js'
import { PythonReference, pythonHas, writePythonWorkload, type PythonWorkload } from './python-reference.js'

export interface PythonVariants {
  variants: Array<{ name: string; run: () => Promise<Throughput> }>
  skipped: string[]
  close(): void
}

export const PYTHON_ORT = 'python onnxruntime bare loop 16'
export const PEFT_ONE_BY_ONE = 'transformers+PEFT one by one 16'
export const PEFT_SHARED = 'transformers+PEFT shared-prefix batch 16'

export async function startPythonReferences(python: string, dir: string, workload: PythonWorkload, log: (msg: string) => void): Promise<PythonVariants> {
  const started: PythonReference[] = []
  const out: PythonVariants = {
    variants: [],
    skipped: [],
    close: () => started.forEach((p) => p.close()),
  }
  const hasOrt = pythonHas(python, ['onnxruntime', 'numpy'])
  const hasPeft = pythonHas(python, ['torch', 'transformers', 'peft'])
  if (!hasOrt && !hasPeft) {
    out.skipped.push(`${PYTHON_ORT}, ${PEFT_ONE_BY_ONE}, ${PEFT_SHARED}: ${python} lacks onnxruntime and torch/transformers/peft`)
    return out
  }
  const file = await writePythonWorkload(dir, workload)
  const add = async (name: string, script: string, args: string[]) => {
    log(`starting the ${name} reference (${python})`)
    const ref = await PythonReference.start(python, script, [file, ...args])
    started.push(ref)
    out.variants.push({ name, run: () => ref.run() })
  }
  if (hasOrt) await add(PYTHON_ORT, 'ort_bare_loop.py', [])
  else out.skipped.push(`${PYTHON_ORT}: ${python} cannot import onnxruntime`)
  if (hasPeft) {
    await add(PEFT_ONE_BY_ONE, 'peft_reference.py', ['one-by-one'])
    await add(PEFT_SHARED, 'peft_reference.py', ['shared'])
  } else out.skipped.push(`${PEFT_ONE_BY_ONE}, ${PEFT_SHARED}: ${python} cannot import torch, transformers and peft`)
  return out
}
