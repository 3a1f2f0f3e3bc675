"""Runs huggingface_hub's InferenceClient.text_generation against a server.

Reads {"base_url": ..., "api_key": ..., "calls": [kwargs, ...]} as JSON on stdin; writes one
JSON list on stdout, per call {"ok": result} or {"error": class, "message": str}.
A streamed call's result is the list of what the client yielded. Used by
test/server/tgi-root.test.ts: the test checks values, this script only drives
the real client and reports what it parsed.
"""
import dataclasses
import json
import sys

from huggingface_hub import InferenceClient


def plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def main():
    request = json.load(sys.stdin)
    client = InferenceClient(base_url=request["base_url"], api_key=request.get("api_key"))
    results = []
    for call in request["calls"]:
        try:
            answer = client.text_generation(**call)
            if call.get("stream"):
                answer = list(answer)
            results.append({"ok": plain(answer)})
        except Exception as err:  # the test asserts on the class and message
            results.append({"error": type(err).__name__, "message": str(err)})
    json.dump(results, sys.stdout)


main()
