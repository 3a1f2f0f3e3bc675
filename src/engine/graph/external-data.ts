/**
 * Loading a rewritten graph whose weights live in external data files
 * (model.onnx + model.onnx_data, the layout of every model above 2 GB).
 * ONNX Runtime resolves external data relative to the model file's folder,
 * and onnxruntime-node's bytes overload has no folder (its `externalData`
 * session option is honoured by onnxruntime-web only). So the rewritten graph
 * is written to a private temporary folder beside links to the original data
 * files, loaded from there by path, and the folder removed once the session
 * exists: the weights are never copied, and the user's model folder, which
 * may be read-only, is never written.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, isAbsolute, join, normalize, sep } from 'node:path'
import { ModelLoadError } from '../../errors.js'

/** A location must stay inside the model's folder, as the ONNX spec requires. */
function checkedLocation(location: string): string {
  const clean = normalize(location)
  if (isAbsolute(clean) || clean === '..' || clean.startsWith(`..${sep}`)) {
    throw new ModelLoadError(`external data location '${location}' leaves the model's folder`)
  }
  return clean
}

export async function withBesideExternalData<T>(
  modelFile: string,
  bytes: Uint8Array,
  dataFiles: readonly string[],
  load: (path: string) => Promise<T>,
): Promise<T> {
  const locations = dataFiles.map(checkedLocation)
  const dir = await mkdtemp(join(tmpdir(), 'prefixd-derived-'))
  try {
    for (const location of locations) {
      const link = join(dir, location)
      await mkdir(dirname(link), { recursive: true })
      await symlink(join(dirname(modelFile), location), link)
    }
    const derived = join(dir, 'model.onnx')
    await writeFile(derived, bytes)
    return await load(derived)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
