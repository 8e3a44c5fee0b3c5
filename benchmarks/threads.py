"""CPU latency per thread count, on an idle CPU and with a competing load (JSON): what `--threads auto` is based on.

    python benchmarks/threads.py [--model asymformer_b0_t] [--size 240x320] [--iters 10] [--threads 0,1,2]
                                 [--load N]

Each thread count runs in a fresh process (torch's inter-op pool can be sized once per process;
`0` means torch's own default, i.e. what a user got before `--threads`), with the BN-folded model
(what `predict` runs). `--load N` starts N busy-loop processes (default: one per usable core) for
the "loaded" half, standing in for a robot's other nodes. Reported per setting and condition:
median / p90 / min ms and p90/median, the spread `benchmark` warns about.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def _child(model_name: str, h: int, w: int, threads: int, iters: int) -> dict:
    import torch

    from asymformer.deploy.common import example_inputs, fused_copy
    from asymformer.deploy.optimize import summarize, time_fn
    from asymformer.devices import set_threads
    from asymformer.models import create_model

    if threads:
        set_threads(threads)
    torch.manual_seed(0)
    model = fused_copy(create_model(model_name), "cpu")
    rgb, depth = example_inputs(1, h, w)
    s = summarize(time_fn(model, rgb, depth, warmup=2, iters=iters), 1)
    return {**s, "torch_threads": torch.get_num_threads(), "p90_over_median": round(s["p90_ms"] / s["median_ms"], 2)}


def _run(args, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--child", "--model", args.model, "--size", args.size,
           "--iters", str(args.iters), "--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _busy_loops(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    from asymformer.devices import default_threads, usable_cores

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="asymformer_b0_t")
    p.add_argument("--size", default="240x320", help="HxW (default 240x320)")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", default=None, help="comma list; 0 = torch's default (default: 0,1,cores/2,cores)")
    p.add_argument("--load", type=int, default=None, help="busy-loop processes for the loaded runs (default: cores)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    if args.child:
        print(json.dumps(_child(args.model, h, w, int(args.threads), args.iters)))
        return
    cores = usable_cores()
    settings = [int(t) for t in args.threads.split(",")] if args.threads else sorted({0, 1, max(1, cores // 2), cores})
    load = cores if args.load is None else args.load
    report = {"config": {"model": args.model, "size": args.size, "iters": args.iters, "usable_cores": cores,
                         "busy_loops": load, "auto_threads": default_threads()}, "idle": {}, "loaded": {}}
    for t in settings:
        report["idle"][str(t)] = _run(args, t)
    procs = _busy_loops(load)
    try:
        time.sleep(1.0)
        for t in settings:
            report["loaded"][str(t)] = _run(args, t)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
