"""Devices: one place that turns a user's `--device` into a usable torch.device, and the
per-device settings that results depend on (TF32, cuDNN autotuning, native bfloat16).

A leaf module (imports nothing from asymformer), used by engine/ and deploy/ alike.
"""

from __future__ import annotations

import contextlib

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
