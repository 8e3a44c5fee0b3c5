"""FP32 CPU latency of every exact path at 480×640, batch 1, and its share of the CPU's FP32 peak (JSON).

    python benchmarks/model_cpu.py [--threads 2] [--iters 7] [--model asymformer_b0_t] [--size 480x640]
        [--backends eager,fused,channels_last,jit,onnxruntime,openvino] [--isa native|avx2] [--profile 15]

The peak is computed from /proc/cpuinfo (`deploy.cpu.fp32_peak`: cores × FLOP/cycle of the widest
FMA × clock, with how), the work from the model's multiply-accumulates (`models.flops.count_macs`,
2 FLOP each, attention products included). `--isa avx2` re-runs itself as an AVX2-only CPU
(benchmarks/isa_emulation.py: CPUID masked where the kernel allows, so that every library picks its
AVX2 kernels; otherwise ISA variables that MLAS ignores, and its rows are marked). `--profile N`
adds the N operators that take most of the BN-folded model's time (torch profiler, self CPU time).
"""

from __future__ import annotations

import argparse
import json

import isa_emulation

DEFAULT_BACKENDS = "eager,fused,channels_last,jit,onnxruntime,openvino"


def _args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="asymformer_b0_t")
    p.add_argument("--size", default="480x640", help="HxW (default 480x640)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=7)
    p.add_argument("--backends", default=DEFAULT_BACKENDS)
    p.add_argument("--isa", choices=("native", *isa_emulation.EMULATED), default="native",
                   help="avx2: behave as an AVX2-only CPU (benchmarks/isa_emulation.py says how)")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="add the N most expensive operators")
    return p.parse_args()


def _profile(model, rgb, depth, top: int) -> list[dict]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        model(rgb, depth)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(rgb, depth)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [{"op": e.key, "self_ms": round(e.self_cpu_time_total / 1000, 1), "calls": e.count,
             "share": round(e.self_cpu_time_total / total, 3)} for e in events[:top]]


def main() -> None:
    args = _args()
    if args.isa != "native":
        isa_emulation.reexec(args.isa)
    import torch

    from asymformer.deploy.benchmark import run_benchmark
    from asymformer.deploy.common import example_inputs, fused_copy
    from asymformer.deploy.cpu import fp32_peak
    from asymformer.models import create_model
    from asymformer.models.flops import count_macs

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    h, w = (int(v) for v in args.size.lower().split("x"))
    model = create_model(args.model)
    gflop = 2 * count_macs(fused_copy(model), h, w)["total_with_attention"]
    report = run_benchmark(model, args.backends, h, w, warmup=args.warmup, iters=args.iters)
    peak = fp32_peak(args.threads)
    exact = {}
    for name, r in report["results"].items():
        if "median_ms" in r:
            r["share_of_peak"] = round(gflop / (r["median_ms"] / 1000) / peak["gflops"], 3) if peak["gflops"] else None
            if isa_emulation.note(args.isa, name):
                r["isa_note"] = isa_emulation.note(args.isa, name)
            elif r.get("matches_eager"):
                exact[name] = r["median_ms"]
    report["work_gflop"] = round(gflop, 2)
    report["peak"] = peak
    report["isa"] = isa_emulation.describe(args.isa)
    if exact:
        best = min(exact, key=exact.get)
        report["fastest_exact"] = {"backend": best, "median_ms": exact[best],
                                   "share_of_peak": report["results"][best]["share_of_peak"]}
    if args.profile:
        report["profile_fused"] = _profile(fused_copy(model), *example_inputs(1, h, w), args.profile)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
