"""Latency of every inference backend on one input size, as JSON (the paper's speed protocol).

Batch 1 at 480×640, model call only, warm-up first, then median / p90 / FPS; each backend is
either measured (with its max |Δ| to eager FP32) or listed as skipped with the reason. All
backends are built first and then timed round-robin, one call each per round, so a burst of
load from other processes hits every backend alike instead of whichever ran at that moment.
"""

from __future__ import annotations

import platform
import sys
import time

import torch

from asymformer import devices
from asymformer.models.info import info_of

from .backends import ALL_BACKENDS, backend_device, build_backend
from .common import BackendUnavailable, example_inputs, max_abs_diff
from .cpu import cpu_info
from .optimize import CANDIDATE_ERRORS, summarize, time_fn

DEFAULT_BACKENDS = ("eager", "fused", "channels_last", "jit", "onnxruntime", "onnxruntime-int8", "cpu-bf16",
                    "openvino", "cuda-fp32", "cuda-fp16", "cuda-graphs", "tensorrt")


def environment(device=None) -> dict:
    """What the numbers depend on: torch build, threads, CPU capability, GPU, driver, libraries."""
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
           "machine": platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    env["cpu"] = cpu_info()
    if torch.cuda.is_available():
        dev = devices.resolve_device(device if device is not None else "cuda")
        env.update(gpu=torch.cuda.get_device_name(dev), gpu_index=dev.index, cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), bf16_native=devices.bf16_native(dev))
    for module in ("onnxruntime", "openvino", "tensorrt"):
        try:
            env[module] = __import__(module).__version__
        except Exception:  # noqa: BLE001 - absent or broken: not part of this environment
            pass
    return env


def parse_backends(text_or_list) -> list[str]:
    """'eager,fused' or a list -> validated names ('all' = every backend, 'cpu' / 'cuda' = groups)."""
    items = text_or_list.split(",") if isinstance(text_or_list, str) else list(text_or_list)
    out = []
    for item in (i.strip() for i in items if i.strip()):
        if item == "all":
            out += list(ALL_BACKENDS)
        elif item in ("cpu", "cuda"):
            out += [b for b in ALL_BACKENDS if backend_device(b) == item]
        elif item in ALL_BACKENDS:
            out.append(item)
        else:
            raise ValueError(f"unknown backend {item!r}; choose from {', '.join(ALL_BACKENDS)}, all, cpu, cuda")
    return list(dict.fromkeys(out))


def run_benchmark(model: torch.nn.Module, backends=DEFAULT_BACKENDS, height: int = 480, width: int = 640,
                  batch: int = 1, warmup: int = 3, iters: int = 10, atol: float = 1e-4,
                  progress: bool = False, device=None, extra=None) -> dict:
    """Measure each backend; returns {"config", "environment", "results": {backend: stats or skipped}}.

    `device` is the GPU of the CUDA backends (default cuda:0). The reference is eager FP32 on the
    CPU from a copy of the model; the caller's model is not moved. `extra` maps names to other
    `(rgb, depth) -> logits` CPU callables (another implementation, e.g. the authors' model)
    timed in the same rounds, without the accuracy check.
    """
    backends = parse_backends(backends)
    if warmup < 0 or iters < 1:
        raise ValueError(f"need warmup >= 0 and iters >= 1, got {warmup} and {iters}")
    rgb, depth = example_inputs(batch, height, width)
    reference_fn, _ = build_backend("eager", model, rgb, depth)
    reference = reference_fn(rgb, depth)
    built, results = {}, {}
    for name in backends:  # build everything first, then time round-robin (fair on a noisy machine)
        if progress:
            print(f"benchmark: building {name} ...", file=sys.stderr, flush=True)
        entry = _build(name, model, rgb, depth, reference, atol, device)
        if "fn" in entry:
            built[name] = entry
        results[name] = entry.get("stats", entry)
    for name, fn in (extra or {}).items():
        built[name] = {"fn": fn, "r": rgb, "d": depth, "stats": {"device": "cpu", "external": True}}
        results[name] = built[name]["stats"]
    times = {name: [] for name in built}
    for i in range(warmup + iters):
        for name, entry in built.items():
            try:
                t = time_fn(entry["fn"], entry["r"], entry["d"], warmup=0, iters=1, device=entry["r"].device)
            except CANDIDATE_ERRORS as exc:
                results[name] = {"skipped": f"failed: {type(exc).__name__}: {str(exc)[:300]}"}
                continue
            if i >= warmup:
                times[name] += t
    for name, entry in built.items():
        if "skipped" not in results[name]:
            results[name] = {**summarize(times[name], batch), **entry["stats"],
                             "spread": round(max(times[name]) / max(min(times[name]), 1e-9), 2)}
        if progress and "median_ms" in results[name]:
            r = results[name]
            print(f"benchmark: {name}: median {r['median_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms "
                  f"(built in {r.get('build_s', 0):.1f} s)", file=sys.stderr, flush=True)
    info = info_of(model)
    config = {"model": info.name if info is not None else None, "height": height, "width": width, "batch": batch,
              "warmup": warmup, "iters": iters, "atol": atol}
    return {"config": config, "environment": environment(device), "results": results,
            "warnings": warnings_for(results)}


# A quiet machine repeats a call within a few percent; these bounds leave room for a GPU's clock
# ramps and still catch what a busy neighbour does (median 2,462 ms against a minimum of 45 ms).
SPREAD_P90_OVER_MEDIAN = 1.5
SPREAD_MAX_OVER_MIN = 3.0
SPREAD_MIN_ITERS = 5  # fewer calls say nothing about a spread
BUILD_NOTE_S = 5.0  # builds shorter than this are not worth a sentence


def contended(r: dict) -> bool:
    """A measured result whose calls spread as only competing processes make them spread."""
    if r.get("iters", 0) < SPREAD_MIN_ITERS:
        return False
    return (r["p90_ms"] / max(r["median_ms"], 1e-9) > SPREAD_P90_OVER_MEDIAN
            or r.get("spread", 1.0) > SPREAD_MAX_OVER_MIN)


def warnings_for(results: dict) -> list[str]:
    """Plain sentences about numbers not to trust or quote: contention (a wide spread between calls)
    and builds that cost more than the timed calls (what a one-shot user would really wait for)."""
    out = []
    for name, r in results.items():
        if "median_ms" not in r:
            continue
        p90 = r["p90_ms"] / max(r["median_ms"], 1e-9)
        if contended(r):
            out.append(f"{name}: calls varied widely (p90/median {p90:.1f}, max/min {r.get('spread', 1.0):.1f}): "
                       "other processes were competing for the CPU/GPU; rerun on a quiet machine or with fewer "
                       "--threads before quoting a ratio")
        run_s = r["mean_ms"] * r["iters"] / 1000.0
        if r.get("build_s", 0.0) > max(run_s, BUILD_NOTE_S):
            out.append(f"{name}: building took {r['build_s']:.1f} s, more than its {r['iters']} timed calls "
                       f"({run_s:.1f} s): it pays off only for a long-running process")
    return out


def measured(report: dict) -> list[str]:
    """Names of the backends that were really measured (not skipped)."""
    return [name for name, r in report["results"].items() if "median_ms" in r]


def _build(name, model, rgb, depth, reference, atol, device) -> dict:
    """Build one backend and check it against eager; {"fn", "r", "d", "stats"} or {"skipped"}."""
    t0 = time.perf_counter()
    try:
        fn, info = build_backend(name, model, rgb, depth, device=device)
        target = torch.device(info.get("device", backend_device(name)))
        r, d = rgb.to(target), depth.to(target)
        with torch.inference_mode():
            out = fn(r, d)
        diff = max_abs_diff(out, reference)
    except BackendUnavailable as exc:
        return {"skipped": str(exc)}
    except CANDIDATE_ERRORS as exc:  # a backend that builds but fails to run
        return {"skipped": f"failed: {type(exc).__name__}: {str(exc)[:300]}"}
    agree = float((out.float().argmax(1).cpu() == reference.argmax(1)).float().mean())
    stats = {"max_abs_diff": diff, "matches_eager": bool(diff <= atol), "argmax_agreement": round(agree, 6),
             "build_s": round(time.perf_counter() - t0, 2), **info}
    return {"fn": fn, "r": r, "d": d, "stats": stats}


def compare(report: dict, baseline: str = "eager") -> list[str]:
    """Human lines: backend, median, p90, FPS and speed-up over `baseline` (when it was measured)."""
    res = report["results"]
    base = res.get(baseline, {}).get("median_ms")
    c = report.get("config", {})
    lines = [f"{c.get('model') or 'model'} at {c.get('height')}x{c.get('width')}, batch {c.get('batch')}",
             f"{'backend':<16}{'median ms':>11}{'p90 ms':>10}{'FPS':>9}{'vs ' + baseline:>11}  max|Δ|  {'build s':>8}"]
    for name, r in res.items():
        if "skipped" in r:
            lines.append(f"{name:<16}skipped: {r['skipped']}")
            continue
        ratio = f"{base / r['median_ms']:.2f}x" if base else "-"
        build = f"{r['build_s']:>8.1f}" if "build_s" in r else f"{'-':>8}"
        flag = "  contended" if contended(r) else ""
        diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else f"{'-':>7}"  # external: not checked
        lines.append(f"{name:<16}{r['median_ms']:>11.1f}{r['p90_ms']:>10.1f}{r['fps']:>9.2f}{ratio:>11}"
                     f"  {diff}  {build}{flag}")
    if any(contended(r) for r in res.values() if "median_ms" in r):
        lines.append("contended: calls varied widely (other processes competed); do not quote these ratios")
    return lines
