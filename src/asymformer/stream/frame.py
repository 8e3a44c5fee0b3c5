"""What a frame of a `StreamRunner` is, and how one enters it: checked cheaply in the caller's
thread (so bad input fails there, by name), owned (copied when drivers reuse buffers), and, for
frames already on a GPU, fenced by an event the pre-processing stage waits for."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class Frame:
    index: int
    stamp_ns: int
    rgb: Any
    depth: Any
    meta: Any
    size: tuple[int, int]
    submitted: float  # time.monotonic() at submit
    ready: float = 0.0  # time.monotonic() when pre-processed
    event: Any = None  # CUDA frames: recorded on the producer's stream at submit
    tensors: tuple | None = None
    logits: Any = None
    stage_ms: dict = field(default_factory=dict)
    warm: Any = None  # WarmUp: a StreamRunner.warm_up frame, run by the stage threads but never delivered


class WarmUp:
    """The hidden frame `StreamRunner.warm_up` sends through the stage threads: it is done when the
    post stage finished it, a stage failed on it (`error`), or a newer live frame replaced it."""

    def __init__(self):
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.ran = False  # the post stage finished it (not replaced or discarded)



def check_frame(rgb, depth, copy: bool):
    """One frame, checked cheaply in the caller's thread so bad input fails there, by name."""
    if isinstance(rgb, torch.Tensor):
        if rgb.ndim != 3 or rgb.shape[0] != 3:
            raise ValueError(f"StreamRunner.submit: rgb tensor must be 3×H×W (one frame), got {tuple(rgb.shape)}")
        size = (int(rgb.shape[1]), int(rgb.shape[2]))
    elif isinstance(rgb, np.ndarray):
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"StreamRunner.submit: rgb must be H×W×3 (one frame), got shape {rgb.shape}")
        size = rgb.shape[:2]
    else:
        raise ValueError(f"StreamRunner.submit: rgb must be a numpy array or torch tensor, got {type(rgb).__name__}")
    if not isinstance(depth, (np.ndarray, torch.Tensor)):
        raise ValueError(f"StreamRunner.submit: depth must be a numpy array or torch tensor, got "
                         f"{type(depth).__name__}")
    dshape = tuple(depth.shape)
    dsize = dshape[-2:] if isinstance(depth, torch.Tensor) else (dshape[:2] if len(dshape) >= 2 else dshape)
    if isinstance(depth, np.ndarray) and len(dshape) == 3 and dshape[2] != 1:
        raise ValueError(f"StreamRunner.submit: depth must be one channel (H×W or H×W×1), got shape {dshape}; a "
                         "colour-mapped picture of depth is not depth: pass the camera's depth image")
    if tuple(dsize) != tuple(size) or len(dshape) not in (2, 3):
        raise ValueError(f"StreamRunner.submit: depth {dshape} does not match rgb {size[0]}×{size[1]}; register "
                         f"depth to the colour image first (e.g. align_depth on RealSense)")
    rgb, depth = own(rgb, copy), own(depth, copy)
    return rgb, depth, (int(size[0]), int(size[1]))


def cuda_event(*tensors):
    """For frames already on a GPU: an event on the producer's stream, which the pre-processing
    stage (on its own stream) waits for, so it never reads a frame still being written."""
    dev = next((t.device for t in tensors if isinstance(t, torch.Tensor) and t.is_cuda), None)
    if dev is None:
        return None
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(dev))
    return event


def own(a, copy: bool):
    """A copy when asked (drivers reuse buffers), and always for read-only arrays (decoded
    images often are), which torch cannot wrap safely."""
    if isinstance(a, torch.Tensor):
        return a.clone() if copy else a
    return np.array(a, copy=True) if copy or not a.flags.writeable else a
