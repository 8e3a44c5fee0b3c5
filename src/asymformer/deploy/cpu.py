"""What this CPU can do for inference: model name and the instruction sets that change the numbers.

INT8 runs fastest with VNNI (AVX-512 VNNI or AVX-VNNI), bf16 only exists natively with
AVX-512 BF16 or AMX; without them a "bf16" run is an emulation slower than FP32. Every
benchmark JSON carries `cpu_info()` so its numbers say on what they were obtained, and the
reduced-precision paths ask `has_native_bf16()` before offering bf16 and `int8_scheme()` how
to quantise weights for this CPU's integer kernels.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache

# /proc/cpuinfo flags reported in every benchmark JSON
FEATURES = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
            "amx_tile", "amx_int8", "amx_bf16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
VNNI_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")  # int8_scheme names the first present
# Flags to use instead of /proc/cpuinfo's, space separated: for a process whose CPUID is masked to
# look like another CPU (benchmarks/isa_emulation.py), since the kernel's cpuinfo still lists the host's.
FLAGS_OVERRIDE = "ASYMFORMER_CPU_FLAGS"


def _read_cpuinfo(path: str = "/proc/cpuinfo") -> tuple[str, set[str]]:
    """(model name, flags of the first processor); ("", set()) where there is no /proc/cpuinfo."""
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        return "", set()
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as the kernel reports them (empty off Linux), or those of
    $ASYMFORMER_CPU_FLAGS where set (an emulated CPU)."""
    override = os.environ.get(FLAGS_OVERRIDE)
    return frozenset(override.split() if override is not None else _read_cpuinfo()[1])


def has_native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AVX-512 BF16 or AMX-BF16)."""
    return any(f in cpu_flags() for f in BF16_FLAGS)


def has_vnni() -> bool:
    """True where INT8 dot products are one instruction (VNNI/AMX): INT8 pays most there."""
    return any(f in cpu_flags() for f in VNNI_FLAGS)


def int8_scheme(flags=None) -> dict:
    """How INT8 weights must be stored for the integer dot-product kernels of this CPU.

    With VNNI (AVX-512 VNNI, AVX-VNNI, AMX-INT8) a u8 activation times an s8 weight is summed
    straight into int32: full 8-bit weights are exact. Without it, ONNX Runtime's and OpenVINO's
    x86 kernels use `vpmaddubsw`, which adds *pairs* of u8×s8 products into a saturating int16:
    255·127·2 = 64,770 > 32,767, so large activations clip and the argmax drifts (pixel agreement
    0.57 on an AVX2 EPYC). 7-bit weights (|w| <= 64: 255·64·2 = 32,640) can never saturate; this is
    ONNX Runtime's `reduce_range` and NNCF's `OverflowFix.ENABLE`. `flags` fakes the CPU (tests).
    """
    flags = cpu_flags() if flags is None else frozenset(flags)
    isa = next((f for f in VNNI_FLAGS if f in flags), None)
    if isa is not None:
        return {"isa": isa, "vnni": True, "weight_bits": 8,
                "why": f"{isa}: u8 x s8 products accumulate in int32, full 8-bit weights are exact"}
    base = next((f for f in ("avx512bw", "avx2") if f in flags), "sse4_1" if "sse4_1" in flags else "unknown")
    return {"isa": base, "vnni": False, "weight_bits": 7,
            "why": f"{base} without VNNI: vpmaddubsw sums u8 x s8 pairs in a saturating int16, so weights "
                   "are kept to 7 bits (|w| <= 64) and cannot overflow"}


CPUFREQ_MAX = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"


def _clock_ghz(path: str = "/proc/cpuinfo", cpufreq: str = CPUFREQ_MAX) -> tuple[float | None, str]:
    """(GHz, where it came from): cpufreq's maximum (turbo) where the kernel exposes it, else the
    nominal clock in the model name ("@ 2.80GHz"), else /proc/cpuinfo's current "cpu MHz"."""
    try:
        return int(open(cpufreq).read()) / 1e6, "cpufreq max"
    except (OSError, ValueError):
        pass
    model, _ = _read_cpuinfo(path)
    if "@" in model and model.rstrip().lower().endswith("ghz"):
        try:
            return float(model.rsplit("@", 1)[1].strip()[:-3]), "model name (nominal)"
        except ValueError:
            pass
    try:
        for line in open(path, encoding="utf-8", errors="replace"):
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) / 1000.0, "cpu MHz (current)"
    except (OSError, ValueError):
        pass
    return None, "unknown"


def fp32_peak(threads: int, flags=None, clock_ghz: float | None = None) -> dict:
    """The FP32 peak of `threads` cores: cores x FLOP/cycle x clock, and how it was computed.

    FLOP/cycle assumes two FMA units of the widest vector the flags allow (an FMA is 2 FLOP):
    AVX-512 64, AVX2+FMA 32, AVX 16, SSE 8. Parts with one 512-bit FMA unit (Xeon Silver/Bronze,
    some client CPUs) reach half the AVX-512 figure; turbo clocks under load vary, so the figure is
    an upper bound to compare paths against, not a promise.
    """
    flags = cpu_flags() if flags is None else frozenset(flags)
    if "avx512f" in flags:
        per_cycle, isa = 64, "avx512f (2 x 512-bit FMA)"
    elif "avx2" in flags and "fma" in flags:
        per_cycle, isa = 32, "avx2+fma (2 x 256-bit FMA)"
    elif "avx" in flags:
        per_cycle, isa = 16, "avx (256-bit add + mul)"
    else:
        per_cycle, isa = 8, "sse (128-bit add + mul)"
    source = "given"
    if clock_ghz is None:
        clock_ghz, source = _clock_ghz()
    gflops = threads * per_cycle * clock_ghz if clock_ghz else None
    return {"gflops": round(gflops, 1) if gflops else None, "threads": threads, "flop_per_cycle": per_cycle,
            "isa": isa, "clock_ghz": round(clock_ghz, 3) if clock_ghz else None, "clock_source": source,
            "how": f"{threads} cores x {per_cycle} FLOP/cycle ({isa}) x {clock_ghz or '?'} GHz ({source})"}


def cpu_info() -> dict:
    """Model, core count and the inference-relevant features, for every benchmark JSON."""
    import torch

    model, flags = _read_cpuinfo()[0], cpu_flags()
    info = {"model": model or platform.processor() or platform.machine(), "logical_cpus": os.cpu_count(),
            "features": {flag: flag in flags for flag in FEATURES},
            "native_bf16": has_native_bf16(), "vnni": has_vnni(), "int8_scheme": int8_scheme(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if FLAGS_OVERRIDE in os.environ:
        info["flags_from"] = f"${FLAGS_OVERRIDE} (an emulated CPU; the host's are in /proc/cpuinfo)"
    return info
