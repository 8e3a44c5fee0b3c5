"""The GPU protocol of benchmarks/RESULTS.md in one run; prints JSON (and a Markdown table).

On a CUDA machine, for asymformer_b0_t at 480×640 batch 1:
1. model time of every CUDA backend (FP32, FP16, bf16, CUDA graphs, torch.compile, TensorRT FP16),
   timed round-robin with CUDA events (`asymformer benchmark --backends cuda`);
2. accuracy of each against CUDA FP32 on the same input: max |Δ| and argmax agreement;
3. end to end through `Segmenter` (uint8 RGB + uint16 depth on the host -> labels on the host);
4. optionally the official implementation's FP32 eager (`--official-repo`, the authors' repository
   checked out outside this one; its model class is imported from there);
5. training step throughput and peak memory at batch 8 (benchmarks/train_step.py), FP32 vs AMP.

Weights: `--weights` (the official .pth or our .safetensors), else the numpy-only reference
generator of ../shared/reference (`--refweights`), else random initialisation.

    python benchmarks/gpu_protocol.py --device cuda:0 --md results.md > results.json
    python benchmarks/gpu_protocol.py --smoke   # CPU-only check that the script runs (tiny sizes)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch

import asymformer
from asymformer.deploy import Segmenter, run_benchmark
from asymformer.deploy.backends import backend_device, build_backend
from asymformer.deploy.benchmark import environment
from asymformer.deploy.common import BackendUnavailable, example_inputs
from asymformer.deploy.optimize import summarize, time_fn

CUDA_SET = ("cuda-fp32", "cuda-fp16", "cuda-bf16", "cuda-graphs", "cuda-compile", "tensorrt")
SMOKE_SET = ("eager", "fused", "onnxruntime")


def load(args):
    if args.weights:
        return asymformer.load_model(args.weights), f"file {args.weights}"
    model = asymformer.create_model(args.model, num_classes=40)
    ref = Path(args.refweights)
    if ref.is_file():
        spec = importlib.util.spec_from_file_location("refweights", ref)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        keys = mod.read_keys(ref.parent / "official_state_dict_keys_nyu40.txt")
        asymformer.load_official_state_dict(model, mod.state_dict(keys, seed=1))
        return model, "shared reference weights (refweights.py, seed 1)"
    return model, "random initialisation"


def _target(name, device):
    return torch.device(device) if backend_device(name) == "cuda" else torch.device("cpu")


def agreement(model, names, device, size, reference="cuda-fp32"):
    """max |Δ| and argmax agreement of each backend against `reference` on one input."""
    rgb, depth = example_inputs(1, *size, seed=7)
    outs = {}
    for name in (reference, *[n for n in names if n != reference]):
        try:
            fn, _ = build_backend(name, model, rgb, depth, device=device)
            with torch.inference_mode():
                outs[name] = fn(*(t.to(_target(name, device)) for t in (rgb, depth))).float().cpu()
        except (BackendUnavailable, RuntimeError, ValueError) as exc:
            outs[name] = str(exc)[:200]
    ref = outs.get(reference)
    rows = {}
    for name, out in outs.items():
        if isinstance(out, str) or not isinstance(ref, torch.Tensor):
            rows[name] = {"skipped": out if isinstance(out, str) else "no reference"}
            continue
        rows[name] = {"max_abs_diff": float((out - ref).abs().max()),
                      "argmax_agreement": float((out.argmax(1) == ref.argmax(1)).float().mean())}
    return rows


def end_to_end(model, device, size, iters):
    """Segmenter calls on host frames: upload, normalise, model, softmax/argmax, download (numpy
    results, so each call has finished when it returns: wall-clock timing is right on a GPU)."""
    seg = Segmenter(model, device=device)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    depth = rng.integers(500, 5000, size, dtype=np.uint16)
    stats = summarize(time_fn(seg, rgb, depth, warmup=5, iters=iters, device="cpu"), 1)
    return {"backend": seg.backend, **stats}


def official(repo: str, device, size, iters):
    """FP32 eager of the authors' model class, imported from their checkout (not from ours)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from inference_lowp import official_model  # stands in for timm/thop, which the authors import

    try:
        net = official_model(repo).to(device)
    except Exception as exc:  # noqa: BLE001 - whatever their checkout lacks, report it
        return {"skipped": f"cannot import the official model from {repo}: {type(exc).__name__}: {exc}"}
    rgb, depth = (t.to(device) for t in example_inputs(1, *size))
    return summarize(time_fn(net, rgb, depth, warmup=10, iters=iters, device=device), 1)


def markdown(report) -> str:
    lines = ["| backend | median ms | p90 ms | FPS | max abs diff vs the first backend | argmax agreement |",
             "|---|---|---|---|---|---|"]
    acc = report["accuracy"]
    for name, r in report["model_time"]["results"].items():
        a = acc.get(name, {})
        if "skipped" in r:
            lines.append(f"| {name} | skipped: {r['skipped'][:80]} | | | | |")
            continue
        lines.append(f"| {name} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | {r['fps']:.1f} | "
                     f"{a.get('max_abs_diff', float('nan')):.1e} | {a.get('argmax_agreement', float('nan')):.4f} |")
    e2e = report["end_to_end"]
    lines.append(f"| Segmenter end to end ({e2e['backend']}) | {e2e['median_ms']:.2f} | | {e2e['fps']:.1f} | | |")
    off = report.get("official_fp32", {})
    if "median_ms" in off:
        lines.append(f"| official FP32 eager | {off['median_ms']:.2f} | | {off['fps']:.1f} | | |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--model", default="asymformer_b0_t")
    p.add_argument("--weights")
    p.add_argument("--refweights", default=str(Path(__file__).resolve().parents[2] / "shared/reference/refweights.py"))
    p.add_argument("--official-repo", help="the authors' AsymFormer checkout (outside this repository)")
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--train", action="store_true", help="also run benchmarks/train_step.py's GPU part")
    p.add_argument("--md", help="also write the Markdown table here")
    p.add_argument("--smoke", action="store_true", help="CPU, asymformer_b0_a at 64×96: checks the script runs")
    args = p.parse_args()
    size, names, device = (480, 640), CUDA_SET, args.device
    if args.smoke:
        size, names, device, args.model, args.iters = (64, 96), SMOKE_SET, "cpu", "asymformer_b0_a", 3
        args.refweights = ""
    model, weights = load(args)
    report = {"weights": weights, "environment": environment(None if args.smoke else device),
              "model_time": run_benchmark(model, names, *size, warmup=10 if not args.smoke else 1,
                                          iters=args.iters, device=None if args.smoke else device),
              "accuracy": agreement(model, names, device, size, reference=names[0]),
              "end_to_end": end_to_end(model, device, size, args.iters)}
    if args.official_repo:
        report["official_fp32"] = official(args.official_repo, torch.device(device), size, args.iters)
    if args.train and not args.smoke:
        sys.path.insert(0, str(Path(__file__).parent))
        from train_step import bench

        dev = torch.device(device)
        report["train"] = [bench(args.model, dev, 8, size, amp, 10) for amp in ("none", "bf16", "fp16")]
    print(json.dumps(report, indent=1))
    if args.md:
        Path(args.md).write_text(markdown(report) + "\n")


if __name__ == "__main__":
    main()
