"""FP32 vs INT8 vs bf16 vs OpenVINO on the CPU, and the official implementation, in ONE interleaved run (JSON).

    python benchmarks/inference_lowp.py --threads 2 --iters 7 \\
        [--official PATH/TO/AsymFormer] [--models asymformer_b0_t] [--sizes 480x640]

Every backend (and the authors' model, when `--official` points at a checkout of their
repository) is built first and then timed round-robin, one call each per round, so load from
other processes hits all of them alike; compare the ratios within one run. The official model
is imported from that checkout with `timm`/`thop` replaced by minimal stand-ins defined here
(DropPath is the identity at inference); its code never enters this repository.
Every JSON carries the CPU model and features (AVX2, AVX-512, VNNI, BF16, AMX), the INT8 weight
format chosen for this CPU (`int8_scheme`), the CPU's FP32 peak with how it was computed
(`deploy.cpu.fp32_peak`) and each FP32 path's share of it (`share_of_peak`; the work is the
model's multiply-accumulates, 2 FLOP each, attention products included), and per size and model the
`chosen` path of each precision: the fastest one that is exact (FP32) or agrees with FP32 on
>= 98 % of the pixels (INT8, bf16), as `optimize_for_inference` would choose.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import types

import isa_emulation

if "--isa" in sys.argv and sys.argv[sys.argv.index("--isa") + 1:][:1] == ["avx2"]:  # before torch loads
    isa_emulation.reexec("avx2")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from asymformer.deploy.benchmark import environment, run_benchmark  # noqa: E402
from asymformer.deploy.cpu import fp32_peak  # noqa: E402
from asymformer.models import create_model  # noqa: E402

BACKENDS = "eager,fused,onnxruntime,onnxruntime-int8,cpu-bf16,openvino,openvino-int8,openvino-bf16"


def _stub_official_deps() -> None:
    """Minimal `timm.models.layers` and `thop` so the authors' model file imports without them."""
    def to_2tuple(x):
        return tuple(x) if isinstance(x, (tuple, list)) else (x, x)

    class DropPath(nn.Module):  # identity at inference, which is all that is timed
        def __init__(self, *args, **kwargs):
            super().__init__()

        def forward(self, x):
            return x

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath, layers.to_2tuple, layers.trunc_normal_ = DropPath, to_2tuple, nn.init.trunc_normal_
    models = types.ModuleType("timm.models")
    models.layers, models.register_model = layers, (lambda f: f)
    registry = types.ModuleType("timm.models.registry")
    registry.register_model = models.register_model
    timm = types.ModuleType("timm")
    timm.models = models
    thop = types.ModuleType("thop")
    thop.profile = lambda *a, **k: (0, 0)
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers,
                        "timm.models.registry": registry, "thop": thop})


def official_model(repo: str, num_classes: int = 40) -> nn.Module:
    """The authors' B0_T (random weights: same speed) from a checkout at `repo`, eval mode."""
    _stub_official_deps()
    sys.path.insert(0, repo)
    from src.AsymFormer import B0_T  # noqa: PLC0415 - the peer's package, importable only now

    return B0_T(num_classes=num_classes, pretrained_backbone=False).eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="asymformer_b0_t", help="comma list of variants")
    p.add_argument("--sizes", default="480x640", help="comma list of HxW")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--backends", default=BACKENDS)
    p.add_argument("--official", metavar="REPO", help="checkout of the authors' repository (timed beside ours)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=7)
    p.add_argument("--isa", choices=("native", "avx2"), default="native",
                   help="avx2: run as an AVX2-only CPU (benchmarks/isa_emulation.py says what obeys)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    runs = []
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.lower().split("x"))
        for name in args.models.split(","):
            torch.manual_seed(0)
            model = create_model(name)
            extra = {"official": official_model(args.official)} if args.official and name.endswith("b0_t") else {}
            with contextlib.redirect_stdout(sys.stderr):  # progress lines; stdout stays pure JSON
                report = run_benchmark(model, args.backends, h, w, warmup=args.warmup, iters=args.iters,
                                       extra=extra, progress=True)
            summary = summarize(report["results"], _gflop(model, h, w), fp32_peak(args.threads))
            runs.append({"model": name, "size": [h, w], "summary": summary, "chosen": chosen(summary),
                         "full": report})
    notes = {b: isa_emulation.note(args.isa, b) for b in args.backends.split(",")}
    isa = {**isa_emulation.describe(args.isa), "notes": {b: n for b, n in notes.items() if n}}
    print(json.dumps({"environment": environment(), "peak": fp32_peak(args.threads), "isa": isa,
                      "command": " ".join(sys.argv), "runs": runs}, indent=1))


def _gflop(model, h: int, w: int) -> float:
    from asymformer.deploy.common import fused_copy
    from asymformer.models.flops import count_macs

    return 2 * count_macs(fused_copy(model), h, w)["total_with_attention"]


PRECISION_OF = {"onnxruntime-int8": "int8", "openvino-int8": "int8", "cpu-bf16": "bf16", "openvino-bf16": "bf16"}


def chosen(summary: dict, min_agreement: float = 0.98) -> dict:
    """Per precision, the fastest path that is exact (fp32) or agrees with FP32 (int8, bf16), with its
    ratio to the fastest exact FP32 path: the table row of this CPU."""
    best = {}
    for name, r in summary.items():
        if "median_ms" not in r or name == "official":
            continue
        precision = PRECISION_OF.get(name, "fp32")
        ok = (r.get("max_abs_diff") or 0) <= 1e-4 if precision == "fp32" else \
            (r.get("argmax_agreement") or 0) >= min_agreement
        if ok and (precision not in best or r["median_ms"] < best[precision]["median_ms"]):
            best[precision] = {"backend": name, "median_ms": r["median_ms"],
                               "argmax_agreement": r.get("argmax_agreement"), "share_of_peak": r.get("share_of_peak")}
    if "fp32" in best:
        for entry in best.values():
            entry["vs_fp32"] = round(entry["median_ms"] / best["fp32"]["median_ms"], 3)
    return best


def summarize(results: dict, gflop: float | None = None, peak: dict | None = None) -> dict:
    """Median, FPS, ratios to eager and to the official code, accuracy against eager, and the share of
    the CPU's FP32 peak (a reduced-precision path's share says how far past FP32 it gets), per backend."""
    eager = results.get("eager", {}).get("median_ms")
    official = results.get("official", {}).get("median_ms")
    out = {}
    for name, r in results.items():
        if "median_ms" not in r:
            out[name] = {"skipped": r.get("skipped", r.get("rejected"))}
            continue
        out[name] = {"median_ms": r["median_ms"], "p90_ms": r["p90_ms"], "fps": r["fps"],
                     "vs_eager": round(r["median_ms"] / eager, 3) if eager else None,
                     "vs_official": round(r["median_ms"] / official, 3) if official else None,
                     "max_abs_diff": r.get("max_abs_diff"), "argmax_agreement": r.get("argmax_agreement")}
        if gflop and peak and peak.get("gflops"):
            out[name]["share_of_peak"] = round(gflop / (r["median_ms"] / 1000) / peak["gflops"], 3)
    return out


if __name__ == "__main__":
    main()
