"""Devices: one place that turns a user's `--device` into a usable torch.device, and the
per-device settings that results depend on (TF32, cuDNN autotuning, native bfloat16).

A leaf module (imports nothing from asymformer), used by engine/ and deploy/ alike.
"""

from __future__ import annotations

import contextlib
import os

import torch

DEVICE_HELP = "auto, cpu, cuda or cuda:N"


def resolve_device(device="auto", default_index: int = 0) -> torch.device:
    """'auto' -> the first (or `default_index`-th) GPU if CUDA works, else the CPU; explicit
    devices are checked (exists, index in range) with one message that says what to pass."""
    if isinstance(device, torch.device):
        dev = device
    else:
        name = "auto" if device is None else str(device).strip().lower()
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ValueError(f"device {device!r} is not a device; expected {DEVICE_HELP}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r}: no CUDA GPU is available to torch {torch.__version__}; "
                             f"use device 'cpu'")
        count = torch.cuda.device_count()
        if dev.index is None:
            dev = torch.device("cuda", default_index % count)
        elif dev.index >= count:
            raise ValueError(f"device {str(device)!r}: only {count} CUDA GPU(s) visible (cuda:0..cuda:{count - 1}); "
                             f"check CUDA_VISIBLE_DEVICES")
    elif dev.type not in ("cpu", "meta"):
        raise ValueError(f"device {str(device)!r} is not supported; expected {DEVICE_HELP}")
    return dev


def bf16_native(device) -> bool:
    """bfloat16 in hardware on this very GPU: compute capability 8.0 (Ampere) or newer.
    torch.cuda.is_bf16_supported() would also say yes where it is only emulated, and asks
    the current device rather than the one named."""
    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(dev)[0] >= 8


def synchronize(device) -> None:
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


@contextlib.contextmanager
def cuda_math(fp32: bool = True, benchmark: bool = True):
    """Scope the process-wide CUDA maths switches to a block, restoring them afterwards.

    fp32=True: IEEE FP32 matmuls and convolutions (no TF32), so an "FP32" result is FP32 and
    matches the CPU to 1e-4. benchmark=True: cuDNN autotuning for fixed input shapes.
    """
    cudnn = torch.backends.cudnn
    matmul = torch.backends.cuda.matmul
    new_api = hasattr(matmul, "fp32_precision") and hasattr(cudnn, "conv")
    saved = ((matmul.fp32_precision, cudnn.conv.fp32_precision) if new_api
             else (matmul.allow_tf32, cudnn.allow_tf32)), cudnn.benchmark
    try:
        if fp32:
            if new_api:
                matmul.fp32_precision, cudnn.conv.fp32_precision = "ieee", "ieee"
            else:
                matmul.allow_tf32, cudnn.allow_tf32 = False, False
        cudnn.benchmark = benchmark
        yield
    finally:
        (a, b), cudnn.benchmark = saved
        if new_api:
            matmul.fp32_precision, cudnn.conv.fp32_precision = a, b
        else:
            matmul.allow_tf32, cudnn.allow_tf32 = a, b


# --------------------------------------------------------------------------- CPU threads
def usable_cores() -> int:
    """Cores this process may run on (its affinity mask: a container's or taskset's limit), not the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS / Windows have no affinity API
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """The thread count `auto` means: $OMP_NUM_THREADS when the user set it, else half the usable cores.

    Why half: a robot's CPU is always shared (drivers, SLAM, planners). With one thread per core,
    each parallel region ends at a barrier that waits for the thread the scheduler parked, and a
    2-core machine with one busy neighbour ran a frame 40x slower; half the cores lost little on an
    idle machine and nothing collapsed under load (benchmarks/threads.py, benchmarks/RESULTS.md).
    """
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, usable_cores() // 2)


def resolve_threads(threads) -> int:
    """None / 'auto' -> `default_threads()`; a whole number >= 1 as is; anything else one clear error."""
    if threads is None or (isinstance(threads, str) and threads.strip().lower() == "auto"):
        return default_threads()
    try:
        n = int(threads)
    except (TypeError, ValueError):
        raise ValueError(f"threads must be a whole number >= 1 or 'auto', got {threads!r}") from None
    if n < 1 or (isinstance(threads, float) and n != threads):
        raise ValueError(f"threads must be a whole number >= 1 or 'auto', got {threads!r}")
    return n


def set_threads(threads="auto") -> int:
    """Apply one CPU thread count to the whole process and return it.

    torch's intra-op pool is set here; ONNX Runtime sessions (`deploy.common.ort_session`) and
    OpenVINO compiled models (`deploy.accel.openvino_backend.compile_onnx`) read `torch.get_num_threads()`
    when they are built, so one call covers all three runtimes. torch's inter-op pool can be sized
    only once, before any parallel work has started: it is set on the first call that can, and
    later calls leave it as it is (it only matters for TorchScript forks, which the model has none of).
    """
    n = resolve_threads(threads)
    torch.set_num_threads(n)
    if torch.get_num_interop_threads() != n:
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # parallel work already started, or set before: fixed for this process
            pass
    return n
