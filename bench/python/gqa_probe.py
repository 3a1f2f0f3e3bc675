"""Probe (issue #19): would ONNX Runtime's fused GroupQueryAttention, writing
each decode step's key/value column into the cache in place, make a decode
pass cheaper than the exported graph's attention, whose Concat copies the
whole past into `present` every pass?

Takes a model.onnx laid out as prefixd's generated Llama (bench/workload.ts:
per layer `present.{i}.key = Concat(past, Transpose(k_new), axis=2)`, the
query scaled by a Mul, an additive mask before the Softmax, the attention
output Transposed and Reshaped into o_proj) and builds, in memory, a variant
where each layer's attention is one com.microsoft GroupQueryAttention node
(scale from the graph, the model's own rotary kept, its mask fed as
attention_bias) whose present is bound to the same buffer as its past: the
"shared buffer" mode, in which it writes only the new column. The buffer has
`--room` columns beyond the past (1: exactly the new one; an engine that
appends in place needs more, or it re-packs the cache every step).

Then, for batch B and past lengths given, with the same inputs: checks that
the logits agree (max |diff|, same argmax) and times decode passes of the two
graphs alternating in blocks. The exported graph's present is bound to
arrays allocated once, as prefixd's engine binds it (present in place).

  python bench/python/gqa_probe.py .cache/bench/llama-15m-seed0/model.onnx --past 32 64 96 --room 1 16 32

Not used by prefixd: measured in bench/RESULTS.md (section "2026-12-02
18:10 UTC"); docs/performance.md ("What remains") says why it was not taken.
"""
import argparse
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper, TensorProto


def gqa_variant(path):
    """The model with each layer's attention as one GroupQueryAttention node (see the module doc)."""
    model = onnx.load(path)
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    readers = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    initializers = {i.name: i for i in graph.initializer}

    def constant(name):
        if name in initializers:
            return numpy_helper.to_array(initializers[name])
        node = producer[name]
        assert node.op_type == "Constant", f"{name} is not a constant"
        return numpy_helper.to_array(node.attribute[0].t)

    def only_reader(name, op):
        nodes = readers.get(name, [])
        assert len(nodes) == 1 and nodes[0].op_type == op, f"{name}: expected one {op} reader"
        return nodes[0]

    dropped, added = set(), []
    layers = sum(1 for o in graph.output if o.name.endswith(".key") and o.name.startswith("present."))
    for i in range(layers):
        concat_k, concat_v = producer[f"present.{i}.key"], producer[f"present.{i}.value"]
        transpose_k, transpose_v = producer[concat_k.input[1]], producer[concat_v.input[1]]
        keys_t = [n for n in readers[f"present.{i}.key"] if n.op_type == "Transpose"][0]
        scores = only_reader(keys_t.output[0], "MatMul")
        scale_q = producer[scores.input[0]]
        assert scale_q.op_type == "Mul"
        transpose_q = producer[scale_q.input[0]]
        masked = only_reader(scores.output[0], "Add")
        softmax = only_reader(masked.output[0], "Softmax")
        context = only_reader(softmax.output[0], "MatMul")
        back = only_reader(context.output[0], "Transpose")
        merged = only_reader(back.output[0], "Reshape")
        past = next(x for x in graph.input if x.name == f"past_key_values.{i}.key")
        kv_heads = past.type.tensor_type.shape.dim[1].dim_value
        heads = kv_heads  # the generated Llama: as many query heads as key/value heads
        for node in (concat_k, concat_v, transpose_k, transpose_v, keys_t, scores, scale_q, transpose_q, masked, softmax, context, back, merged):
            dropped.add(id(node))
        packed = []
        for source in (transpose_q.input[0], transpose_k.input[0], transpose_v.input[0]):
            added.append(helper.make_node("Reshape", [source, "gqa_probe/bsh"], [f"{source}/bsh"]))
            packed.append(f"{source}/bsh")
        added.append(
            helper.make_node(
                "GroupQueryAttention",
                [*packed, f"past_key_values.{i}.key", f"past_key_values.{i}.value", "seqlens_k", "total_sequence_length", "", "", "", masked.input[1]],
                [merged.output[0], f"present.{i}.key", f"present.{i}.value"],
                domain="com.microsoft",
                num_heads=heads,
                kv_num_heads=kv_heads,
                scale=float(constant(scale_q.input[1])),
            )
        )
    graph.initializer.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "gqa_probe/bsh"))
    graph.input.extend([
        helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["batch"]),
        helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
    ])
    nodes = [n for n in graph.node if id(n) not in dropped] + added
    # Topological order: the new nodes read tensors made anywhere in the layer.
    ready = {x.name for x in graph.input} | set(initializers) | {"gqa_probe/bsh", ""}
    ordered = []
    while nodes:
        rest = []
        for n in nodes:
            if all(x in ready for x in n.input):
                ordered.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        assert len(rest) < len(nodes), "cycle or unknown input"
        nodes = rest
    del graph.node[:]
    graph.node.extend(ordered)
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    # The onnx package may stamp a newer IR version than this onnxruntime reads.
    model.ir_version = min(model.ir_version, 10)
    return model.SerializeToString()


def session(source, threads):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def probe(exported, fused, batch, past, rounds, passes, room):
    layers = sum(1 for o in exported.get_outputs() if o.name.startswith("present.") and o.name.endswith(".key"))
    shape = next(i.shape for i in exported.get_inputs() if i.name == "past_key_values.0.key")
    heads, dim = shape[1], shape[3]
    vocab = exported.get_outputs()[0].shape[-1]
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 1000, (batch, 1)).astype(np.int64)
    mask = np.ones((batch, past + 1), np.int64)
    mask[1, :7] = 0  # left padding on two rows, as a batch of unequal rows has
    mask[min(3, batch - 1), :20] = 0
    positions = (mask.sum(1, keepdims=True) - 1).astype(np.int64)

    a, g = exported.io_binding(), fused.io_binding()
    for io in (a, g):
        io.bind_cpu_input("input_ids", ids)
        io.bind_cpu_input("attention_mask", mask)
        io.bind_cpu_input("position_ids", positions)
    g.bind_cpu_input("seqlens_k", np.full((batch,), past, np.int32))
    g.bind_cpu_input("total_sequence_length", np.array(past + 1, np.int32))
    held = []
    for i in range(layers):
        for kv in ("key", "value"):
            cache = rng.standard_normal((batch, heads, past, dim)).astype(np.float32)
            a.bind_cpu_input(f"past_key_values.{i}.{kv}", cache)
            present = np.empty((batch, heads, past + 1, dim), np.float32)
            a.bind_output(f"present.{i}.{kv}", "cpu", 0, np.float32, list(present.shape), present.ctypes.data)
            shared = np.zeros((batch, heads, past + room, dim), np.float32)
            shared[:, :, :past] = cache
            value = ort.OrtValue.ortvalue_from_numpy(shared)
            g.bind_ortvalue_input(f"past_key_values.{i}.{kv}", value)
            g.bind_ortvalue_output(f"present.{i}.{kv}", value)
            held += [cache, present, shared, value]
    logits_a = np.empty((batch, 1, vocab), np.float32)
    logits_g = np.empty((batch, 1, vocab), np.float32)
    a.bind_output("logits", "cpu", 0, np.float32, list(logits_a.shape), logits_a.ctypes.data)
    g.bind_output("logits", "cpu", 0, np.float32, list(logits_g.shape), logits_g.ctypes.data)
    exported.run_with_iobinding(a)
    fused.run_with_iobinding(g)
    diff = float(np.abs(logits_a - logits_g).max())
    same = bool((logits_a.argmax(-1) == logits_g.argmax(-1)).all())

    def block(s, io):
        times = []
        for _ in range(passes):
            t = time.perf_counter()
            s.run_with_iobinding(io)
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    ta, tg = [], []
    for r in range(rounds):
        first, second = ((exported, a, ta), (fused, g, tg)) if r % 2 == 0 else ((fused, g, tg), (exported, a, ta))
        for s, io, out in (first, second):
            out.append(block(s, io))
    ratio = float(np.median(np.array(ta) / np.array(tg)))
    print(f"| {batch} | {past} | {room} | {np.median(ta) * 1e3:.2f} | {np.median(tg) * 1e3:.2f} | {ratio:.3f} | {diff:.1e} | {same} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--past", type=int, nargs="+", default=[40, 64, 80])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--passes", type=int, default=40)
    parser.add_argument("--room", type=int, nargs="+", default=[1], help="columns the shared buffer has beyond the past (1: exactly the new one)")
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}, {args.threads} threads, {args.rounds} rounds of {args.passes} passes per graph, alternating")
    print("| batch | past | buffer room | exported ms/pass | GQA ms/pass | exported / GQA, median of rounds | logits max diff | same argmax |")
    print("|---|---|---|---|---|---|---|---|")
    # Both graphs load once; every (past, room) reuses them.
    exported, fused = session(args.model, args.threads), session(gqa_variant(args.model), args.threads)
    for past in args.past:
        for room in args.room:
            probe(exported, fused, args.batch, past, args.rounds, args.passes, room)


if __name__ == "__main__":
    main()
