"""glibc's allocator vs a CPU inference in the main thread: page faults and time per frame (JSON).

    python benchmarks/allocator.py [--model asymformer_b0_a] [--size 240x320] [--threads 1] [--iters 15]
        [--rounds 3]

glibc gives large freed blocks back to the kernel (munmap, heap trimming), so every inference
faults its activations in again: thousands of minor page faults per frame, each a few
microseconds on a VM. `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` (read by glibc at
start-up) keep freed memory in the process for reuse instead. This runs the same model call in
fresh processes with and without them, interleaved over --rounds, and reports median ms and
faults per call of each and their ratio. Worker threads use glibc's per-thread arenas, which
trim differently (the streaming runtime's model thread saw about 130 faults per frame either way).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

KEEP = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024), "MALLOC_TRIM_THRESHOLD_": str(2 ** 31 - 1)}

CHILD = """
import json, resource, sys, time
import torch
torch.set_num_threads({threads})
from asymformer.deploy.common import example_inputs, fused_copy
from asymformer.models import create_model
model = fused_copy(create_model("{model}", num_classes=40).eval(), "cpu")
rgb, depth = example_inputs(1, {h}, {w})
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
with torch.inference_mode():
    for _ in range(3):
        model(rgb, depth)
    times, f0 = [], faults()
    for _ in range({iters}):
        t = time.perf_counter(); model(rgb, depth); times.append(1000 * (time.perf_counter() - t))
    print(json.dumps({{"ms": sorted(times)[len(times) // 2], "faults_per_call": (faults() - f0) / {iters}}}))
"""


def run(code: str, extra_env: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in KEEP}
    env.update(extra_env)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="asymformer_b0_a")
    p.add_argument("--size", default="240x320", help="HxW")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=15)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    code = CHILD.format(threads=args.threads, model=args.model, h=h, w=w, iters=args.iters)
    rows = {"glibc default": [], "kept (MALLOC_*_THRESHOLD_)": []}
    for _ in range(args.rounds):  # interleaved: the machine drifts
        rows["glibc default"].append(run(code, {}))
        rows["kept (MALLOC_*_THRESHOLD_)"].append(run(code, KEEP))
    from asymformer.deploy.cpu import cpu_info

    summary = {name: {"ms_median": round(statistics.median(r["ms"] for r in runs), 2),
                      "faults_per_call_median": statistics.median(r["faults_per_call"] for r in runs)}
               for name, runs in rows.items()}
    default, kept = (summary[k]["ms_median"] for k in rows)
    print(json.dumps({"model": args.model, "size": [h, w], "threads": args.threads, "iters": args.iters,
                      "rounds": args.rounds, "env": KEEP, "cpu": cpu_info(), "per_round": rows, "summary": summary,
                      "kept_over_default": round(kept / default, 3)}, indent=1))


if __name__ == "__main__":
    main()
