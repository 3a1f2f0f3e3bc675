/**
 * Derives an `inputs_embeds` input from a graph that takes only `input_ids`,
 * so that virtual tokens of prompt-tuning and P-tuning adapters can enter as
 * input embeddings while every other token is still looked up in the model's
 * own table.
 *
 * Found by structure, not by name: the token-embedding lookup is the one
 * Gather whose data is a 2-D initializer and whose indices are `input_ids`
 * (directly or through Reshape / Cast / Identity / Squeeze / Unsqueeze, as
 * GPT-2's export reshapes them first). For a dynamically quantized table the
 * lookup's float value is the DequantizeLinear after the Gather. A float16 or
 * bfloat16 table gives an input of that type, which float32_io (run after
 * this rewrite) widens to float32 at the boundary like the engine's other
 * floats: a virtual token is rounded to the model's precision once, as PEFT's
 * cast to the model's dtype does.
 *
 * The rewrite:
 *   virtual = Unsqueeze(Less(ids, 0), -1)        a slot marked with id -1
 *   Gather(table, Max(ids, 0))                   the lookup never sees -1
 *   embeds  = Where(virtual, inputs_embeds, lookup)  → every former reader
 * `inputs_embeds` is [batch, seq, hidden] or anything that broadcasts to it
 * (one zero row when no slot is virtual). With no id below 0, Max and Where
 * pass the original values through bit for bit: the graph is exact.
 */
import { TensorProto_DataType, type GraphProto, type NodeProto } from 'onnx-buf'
import {
  addGraphInput,
  addInt64Constant,
  consumersOf,
  defaultOpset,
  initializerNamed,
  insertAfter,
  insertBefore,
  intAttribute,
  newNode,
  redirectConsumers,
} from './graph-edit.js'
import type { GraphRewrite } from './graph-rewrite.js'

/** The derived input's name: the optimum / transformers name for input embeddings. */
export const INPUTS_EMBEDS = 'inputs_embeds'
/** Ops that carry token ids through unchanged in value (only their shape may change). */
const ID_PRESERVING = new Set(['Reshape', 'Cast', 'Identity', 'Squeeze', 'Unsqueeze', 'Flatten'])
const QUANTIZED = new Set([TensorProto_DataType.INT8, TensorProto_DataType.UINT8])
/** Tables whose lookup is already the embedding, in the table's own precision. */
const FLOAT_TABLES = new Set([TensorProto_DataType.FLOAT, TensorProto_DataType.FLOAT16, TensorProto_DataType.BFLOAT16])
/** Where the Unsqueeze axes moved from an attribute to an input. */
const UNSQUEEZE_AXES_AS_INPUT = 13

export interface TokenEmbedding {
  gather: NodeProto
  /** The node whose output is the float embedding (the Gather, or its DequantizeLinear). */
  valueNode: NodeProto
  hiddenSize: number
  /** The embedding's element type, which inputs_embeds takes (a half-precision one is widened at the boundary by float32_io). */
  elemType: TensorProto_DataType
}

/** Every tensor holding the token ids' values: input_ids and what id-preserving ops make of it. */
function tokenIdTensors(graph: GraphProto): Set<string> {
  const ids = new Set(['input_ids'])
  for (let grew = true; grew; ) {
    grew = false
    for (const node of graph.node) {
      if (ID_PRESERVING.has(node.opType) && ids.has(node.input[0]) && !ids.has(node.output[0])) {
        ids.add(node.output[0])
        grew = true
      }
    }
  }
  return ids
}

/** The model's token-embedding lookup, or null when there is none this rewrite can take apart. */
export function findTokenEmbedding(graph: GraphProto): TokenEmbedding | null {
  const ids = tokenIdTensors(graph)
  const lookups = graph.node.filter((n) => {
    if (n.opType !== 'Gather' || !ids.has(n.input[1]) || intAttribute(n, 'axis', 0) !== 0) return false
    return initializerNamed(graph, n.input[0])?.dims.length === 2
  })
  if (lookups.length !== 1) return null
  const gather = lookups[0]
  const table = initializerNamed(graph, gather.input[0])!
  const hiddenSize = Number(table.dims[1])
  if (FLOAT_TABLES.has(table.dataType)) return { gather, valueNode: gather, hiddenSize, elemType: table.dataType }
  if (!QUANTIZED.has(table.dataType)) return null
  const readers = consumersOf(graph, gather.output[0])
  if (readers.length !== 1 || readers[0].opType !== 'DequantizeLinear') return null
  const scale = initializerNamed(graph, readers[0].input[1])
  return scale?.dataType === TensorProto_DataType.FLOAT ? { gather, valueNode: readers[0], hiddenSize, elemType: TensorProto_DataType.FLOAT } : null
}

function hasInput(graph: GraphProto, name: string): boolean {
  return graph.input.some((i) => i.name === name)
}

export const inputsEmbedsRewrite: GraphRewrite = {
  name: 'inputs_embeds',

  needed(model) {
    const graph = model.graph
    if (graph === undefined || !hasInput(graph, 'input_ids') || hasInput(graph, INPUTS_EMBEDS)) return false
    return findTokenEmbedding(graph) !== null
  },

  apply(model) {
    const graph = model.graph!
    const { gather, valueNode, hiddenSize, elemType } = findTokenEmbedding(graph)!
    const at = (what: string) => `/prefixd/inputs_embeds/${what}`
    const ids = gather.input[1]
    const zero = addInt64Constant(graph, at('zero'), [0], [])
    const virtual = newNode('Less', at('Less'), [ids, zero], [at('is_virtual')])
    const safeIds = newNode('Max', at('Max'), [ids, zero], [at('safe_ids')])
    const unsqueeze =
      defaultOpset(model) >= UNSQUEEZE_AXES_AS_INPUT
        ? newNode('Unsqueeze', at('Unsqueeze'), [at('is_virtual'), addInt64Constant(graph, at('last_axis'), [-1], [1])], [at('virtual_slot')])
        : newNode('Unsqueeze', at('Unsqueeze'), [at('is_virtual')], [at('virtual_slot')], { axes: [-1] })
    insertBefore(graph, gather, [virtual, safeIds, unsqueeze])
    gather.input[1] = at('safe_ids')

    const looked = valueNode.output[0]
    const select = newNode('Where', at('Where'), [at('virtual_slot'), INPUTS_EMBEDS, looked], [at('embeddings')])
    insertAfter(graph, valueNode, [select])
    redirectConsumers(graph, looked, at('embeddings'), select)
    addGraphInput(graph, INPUTS_EMBEDS, elemType, ['embeds_batch', 'embeds_sequence', hiddenSize])
  },
}
