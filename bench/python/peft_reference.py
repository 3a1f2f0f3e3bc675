"""What users would pick instead of prefixd: transformers + PEFT prefix tuning
on a model of the same shape (config.json of the bench model, weights drawn
at random: throughput does not depend on them), greedy, N torch threads.

Modes (argv[2]):
  one-by-one  every request alone, each with its own prefix adapter
              (set_adapter between requests): how PEFT serves many tenants;
  shared      one batch of every request under ONE adapter: PEFT's best case
              (it cannot mix prefix adapters in a batch).

Protocol as ort_bare_loop.py: argv[1] is the bench's workload JSON; prints
"ready", then one JSON line {"tokens", "seconds"} per "run" line on stdin.
"""
import json
import sys
import time

import torch
from peft import PrefixTuningConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    with open(sys.argv[1]) as f:
        w = json.load(f)
    mode = sys.argv[2]
    torch.set_num_threads(w["threads"])
    torch.manual_seed(0)
    with open(f'{w["modelDir"]}/config.json') as f:
        config = LlamaConfig(**json.load(f))
    base = LlamaForCausalLM(config).eval()
    prefix = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=w["prefixTokens"])
    model = get_peft_model(base, prefix, adapter_name="p0")
    rows = len(w["prompts"])
    if mode == "one-by-one":
        for i in range(1, rows):
            model.add_adapter(f"p{i}", prefix)
    model.eval()
    prompts = torch.tensor(w["prompts"], dtype=torch.long)
    new_tokens = w["newTokens"]
    gen = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    print("ready", flush=True)

    for line in sys.stdin:
        if line.strip() != "run":
            continue
        started = time.perf_counter()
        tokens = 0
        with torch.inference_mode():
            if mode == "one-by-one":
                for i in range(rows):
                    model.set_adapter(f"p{i}")
                    ids = prompts[i : i + 1]
                    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **gen)
                    tokens += out.shape[1] - ids.shape[1]
            else:
                out = model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), **gen)
                tokens += (out.shape[1] - prompts.shape[1]) * rows
        print(json.dumps({"tokens": int(tokens), "seconds": time.perf_counter() - started}), flush=True)


if __name__ == "__main__":
    main()
