"""What handing engine outputs out without a copy saves (deploy.common.ReusedOutputs), as JSON.

    python benchmarks/engine_outputs.py --threads 2 --iters 15 [--backends onnxruntime,openvino-int8]

For each backend, three callers are timed round-robin in one run:
- `reused`: the caller drops each result before the next call (one buffer, rewritten in place);
- `held`: the caller keeps the previous result during the next call (`out = run(frame)` in a
  loop: two buffers, alternating);
- `copied`: each result copied into new memory, which is what every call paid before 0.2.1
  (less, in fact: ONNX Runtime and OpenVINO copied into new arrays themselves, and the runner
  copied again).
The difference is the copy of a 40×480×640 logit map and the page faults of fresh memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from asymformer.deploy.backends import BackendUnavailable, build_backend
from asymformer.deploy.benchmark import environment, parse_backends
from asymformer.deploy.common import example_inputs
from asymformer.models import create_model


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="asymformer_b0_t")
    ap.add_argument("--size", default="480x640", help="HxW")
    ap.add_argument("--backends", default="onnxruntime,openvino,openvino-int8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=15)
    args = ap.parse_args(argv)
    try:
        backends = parse_backends(args.backends)
        h, w = (int(v) for v in args.size.lower().split("x"))
        rgb, depth = example_inputs(1, h, w)
    except ValueError as exc:
        ap.error(f"--backends / --size: {exc} (sizes are HxW, e.g. 480x640)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.model).eval()
    callers = {}
    for name in backends:
        try:
            fn, _ = build_backend(name, model, rgb, depth)
        except BackendUnavailable as exc:
            print(f"engine_outputs: {name} skipped: {exc}", file=sys.stderr)
            continue
        state = {"prev": None}

        def held(fn=fn, state=state):
            state["prev"] = fn(rgb, depth)

        callers[f"{name}/reused"] = lambda fn=fn: fn(rgb, depth)
        callers[f"{name}/held"] = held
        callers[f"{name}/copied"] = lambda fn=fn: fn(rgb, depth).clone()
    times = {k: [] for k in callers}
    with torch.inference_mode():
        for f in callers.values():
            f()
        for _ in range(args.iters):
            for k, f in callers.items():
                t0 = time.perf_counter()
                f()
                times[k].append((time.perf_counter() - t0) * 1000.0)
    medians = {k: round(statistics.median(v), 1) for k, v in times.items()}
    ratios = {k: round(medians[k] / medians[k.rsplit("/", 1)[0] + "/copied"], 3) for k in medians}
    print(json.dumps({"environment": environment(), "model": args.model, "size": [h, w], "iters": args.iters,
                      "median_ms": medians, "vs_copied": ratios}, indent=1))


if __name__ == "__main__":
    main()
