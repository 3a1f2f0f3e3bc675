/**
 * Loading a rewritten graph whose weights live in external data files
 * (model.onnx + model.onnx_data, the layout of every model above 2 GB).
 * ONNX Runtime resolves external data relative to the model file's folder;
 * rewritten bytes have no folder, and onnxruntime-node ignores the
 * `externalData` session option (onnxruntime-web only). ONNX Runtime's own
 * session setting for models loaded from memory names the folder instead:
 * the weights are read where they are, never copied or linked, and the
 * user's model folder, which may be read-only, is never written.
 */
import { dirname, resolve } from 'node:path'
import type * as ort from 'onnxruntime-node'

/** kOrtSessionOptionsModelExternalInitializersFileFolderPath, as a session config entry. */
const EXTERNAL_FOLDER_KEY = 'model_external_initializers_file_folder_path'

export function externalDataFolderOption(modelFile: string): ort.InferenceSession.SessionOptions['extra'] {
  return { session: { [EXTERNAL_FOLDER_KEY]: resolve(dirname(modelFile)) } }
}

/** The same setting as the C API takes it: a session config entry's key and value. */
export function externalDataFolderEntry(modelFile: string): [string, string] {
  return [`session.${EXTERNAL_FOLDER_KEY}`, resolve(dirname(modelFile))]
}
