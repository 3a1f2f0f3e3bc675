/** What the numbers were measured on: core count, CPU model, load, versions. */
import { readFileSync } from 'node:fs'
import { availableParallelism, loadavg } from 'node:os'
import * as ort from 'onnxruntime-node'

export interface MachineInfo {
  nproc: number
  cpuModel: string
  loadAverage: string
  node: string
  onnxruntime: string
}

export function machineInfo(): MachineInfo {
  let cpuModel = 'unknown'
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'))
    if (line) cpuModel = line.split(':').slice(1).join(':').trim()
  } catch {
    // not Linux: leave it unknown
  }
  return {
    nproc: availableParallelism(),
    cpuModel,
    loadAverage: loadavg().map((x) => x.toFixed(2)).join(' '),
    node: process.version,
    onnxruntime: ort.env.versions.common,
  }
}
