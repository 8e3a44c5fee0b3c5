"""Run a benchmark as an AVX2-only CPU would, from a CPU with AVX-512 (`--isa avx2`).

The variables below must be set before torch loads, so `reexec(isa)` starts the script again with
them; `pretend(isa)` then makes asymformer read the emulated flags (its INT8 weight format and the
FP32 peak follow). What obeys: ATen (`ATEN_CPU_CAPABILITY`), oneDNN in torch and in OpenVINO
(`ONEDNN_MAX_CPU_ISA`), MKL (`MKL_ENABLE_INSTRUCTIONS`). What does not: MLAS, i.e. all of ONNX Runtime
and OpenVINO's FP32 FullyConnected layers, which follow CPUID only (`NOT_RESTRICTED` marks them).
"""

from __future__ import annotations

import os
import sys

EMULATED = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}
FLAGS = {"avx2": frozenset({"avx", "avx2", "fma", "sse4_1"})}
NOT_RESTRICTED = ("MLAS (all of onnxruntime, OpenVINO's FP32 FullyConnected) ignores the ISA variables: "
                  "partly the host's kernels, not an AVX2 time")


def reexec(isa: str) -> None:
    """Start this script again with the ISA variables set (no-op once they are)."""
    env = EMULATED[isa]
    if all(os.environ.get(k) == v for k, v in env.items()):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **env})


def pretend(isa: str) -> None:
    """asymformer sees the emulated CPU's flags (INT8 weight format, FP32 peak)."""
    from asymformer.deploy import cpu

    cpu.cpu_flags = lambda: FLAGS[isa]


def note(isa: str, backend: str) -> str | None:
    """Why a backend's time under emulation is not an AVX2 time, or None."""
    if isa == "native":
        return None
    if backend.startswith("onnxruntime") or backend == "openvino":
        return NOT_RESTRICTED
    if backend.startswith("openvino"):
        return "OpenVINO INT8/bf16: oneDNN kernels restricted; any MLAS layers are not"
    return None
