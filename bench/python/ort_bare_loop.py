"""The reference for prefixd's throughput: a bare loop on the same model.onnx
through onnxruntime's Python API, the runtime's own best path.

Mirrors bench/bare-loop.ts: one batch of every row, each row's prefix as past
key/values, a prefill pass, then decode passes that feed `present` back as
past, argmax with numpy. Same session options as prefixd (CPU, graph
optimization "all", 1 inter-op and N intra-op threads).

Protocol (driven by bench/python-reference.ts): argv[1] is a workload JSON
written by the bench; prints "ready", then for every "run" line on stdin runs
the loop once and prints {"tokens": n, "seconds": s, "runSeconds": s} as one
JSON line. Exits on EOF.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def load_workload(path):
    with open(path) as f:
        w = json.load(f)
    layers, heads, dim, p = w["numLayers"], w["numKvHeads"], w["headDim"], w["prefixTokens"]
    raw = np.fromfile(w["prefixFile"], dtype=np.float32)
    # File layout: for each row, for each layer, keys then values, each [heads, p, dim].
    per = heads * p * dim
    rows = len(w["prompts"])
    kv = raw.reshape(rows, layers, 2, heads, p, dim)
    keys = [np.ascontiguousarray(kv[:, layer, 0]) for layer in range(layers)]
    values = [np.ascontiguousarray(kv[:, layer, 1]) for layer in range(layers)]
    assert raw.size == rows * layers * 2 * per
    return w, keys, values


def main():
    w, past_keys, past_values = load_workload(sys.argv[1])
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = w["threads"]
    session = ort.InferenceSession(w["modelFile"], opts, providers=["CPUExecutionProvider"])
    input_names = {i.name for i in session.get_inputs()}
    layers = w["numLayers"]
    prompts = np.array(w["prompts"], dtype=np.int64)
    rows, n = prompts.shape
    p = w["prefixTokens"]
    new_tokens = w["newTokens"]
    print("ready", flush=True)

    def feeds(ids, past, keys, values):
        seq = ids.shape[1]
        f = {
            "input_ids": ids,
            "attention_mask": np.ones((rows, past + seq), dtype=np.int64),
        }
        if "position_ids" in input_names:
            f["position_ids"] = np.tile(np.arange(past, past + seq, dtype=np.int64), (rows, 1))
        for i in range(layers):
            f[f"past_key_values.{i}.key"] = keys[i]
            f[f"past_key_values.{i}.value"] = values[i]
        return f

    for line in sys.stdin:
        if line.strip() != "run":
            continue
        started = time.perf_counter()
        run_s = 0.0
        t0 = time.perf_counter()
        out = session.run(None, feeds(prompts, p, past_keys, past_values))
        run_s += time.perf_counter() - t0
        names = [o.name for o in session.get_outputs()]
        logits_i = names.index("logits")
        key_i = [names.index(f"present.{i}.key") for i in range(layers)]
        value_i = [names.index(f"present.{i}.value") for i in range(layers)]
        nxt = out[logits_i][:, -1, :].argmax(axis=-1).astype(np.int64).reshape(rows, 1)
        past = p + n
        for _ in range(1, new_tokens):
            f = feeds(nxt, past, [out[k] for k in key_i], [out[v] for v in value_i])
            t0 = time.perf_counter()
            out = session.run(None, f)
            run_s += time.perf_counter() - t0
            nxt = out[logits_i][:, -1, :].argmax(axis=-1).astype(np.int64).reshape(rows, 1)
            past += 1
        seconds = time.perf_counter() - started
        print(json.dumps({"tokens": rows * new_tokens, "seconds": seconds, "runSeconds": run_s}), flush=True)


if __name__ == "__main__":
    main()
