/**
 * Recognizes dynamically quantized graphs (onnxruntime.quantization
 * .quantize_dynamic): they quantize activations at run time with a scale
 * computed over the whole tensor, which spans every row of the batch, so a
 * row's output depends on what shares its forward pass. No server can make
 * such a model batch-invariant; prefixd serves it and says so in /info.
 */
import type { ModelSpec } from '../domain/model-spec.js'

/** Operators that only dynamic quantization writes (the com.microsoft ones are ORT's fused forms). */
const DYNAMIC_QUANTIZATION_OPS = ['DynamicQuantizeLinear', 'MatMulInteger', 'ConvInteger', 'DynamicQuantizeMatMul', 'MatMulIntegerToFloat', 'DynamicQuantizeLSTM']

export function quantizationOf(opTypes: ReadonlySet<string>): ModelSpec['quantization'] {
  return DYNAMIC_QUANTIZATION_OPS.some((op) => opTypes.has(op)) ? 'int8-dynamic' : null
}
