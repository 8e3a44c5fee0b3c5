"""What a tuned SGEMM reaches on this CPU against the FP32 peak the benchmarks compute (JSON).

    python benchmarks/sgemm_ceiling.py [--threads 2] [--iters 9] [--isa native|avx2]

`share_of_peak` in inference_lowp.py / model_cpu.py divides by cores × FLOP/cycle × the clock the
machine reports (`deploy.cpu.fp32_peak`; on a VM often the nominal one). Turbo clocks make the
real ceiling higher: this times torch.mm (MKL) on a large square product and on ConvNeXt-T's
pointwise shapes at 480×640 (tokens × in × out), so a model's share can be read against what the
best matrix kernel of the machine does. `--isa avx2` re-runs itself with CPUID masked
(benchmarks/isa_emulation.py), as the other benchmarks do.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

SHAPES = [(2048, 2048, 2048), (19200, 96, 384), (19200, 384, 96), (4800, 192, 768), (1200, 384, 1536),
          (300, 768, 3072)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=9)
    p.add_argument("--isa", choices=("native", "avx2"), default="native")
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from isa_emulation import describe, reexec

    if args.isa == "avx2":
        reexec("avx2")
    import torch

    from asymformer.deploy.cpu import cpu_info, fp32_peak

    torch.set_num_threads(args.threads)
    peak = fp32_peak(args.threads)
    out = {}
    for m, k, n in SHAPES:
        a, b, c = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
        for _ in range(3):
            torch.mm(a, b, out=c)
        times = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            torch.mm(a, b, out=c)
            times.append(time.perf_counter() - t0)
        gflops = 2 * m * k * n / statistics.median(times) / 1e9
        out[f"{m}x{k}x{n}"] = {"gflops": round(gflops, 1), "vs_peak": round(gflops / peak["gflops"], 3)}
    print(json.dumps({"cpu": cpu_info(), "isa": describe(args.isa),
                      "threads": args.threads, "peak": peak, "sgemm": out}, indent=1))


if __name__ == "__main__":
    main()
