"""Logits -> labels and confidence, the Segmenter's post-processing (and a live stream's).

It sits on a live stream's latency path (benchmarks/stream_latency.py), so it avoids the two
slow things a plain softmax-then-max does on a CPU: an index-returning reduction across the
strided class axis of an NCHW tensor, and fresh full-size temporaries that page-fault in every
frame. At 240×320 with 40 classes: 9-12 ms instead of 17-22 ms, the same labels.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F

WORKSPACE_MAX_BYTES = 64 * 2 ** 20  # a 480×640 frame with 40 classes is 49 MB; bigger ones allocate per call


def labels_and_confidence(logits: torch.Tensor, size: tuple[int, int], keep_logits: bool = False,
                          work: torch.Tensor | None = None, confidence: bool = True):
    """B×K×h×w logits -> (labels B×H×W int64, confidence B×H×W float32 or None, upsampled logits or None).

    labels = the first class with the largest bilinearly upsampled logit (torch.argmax's rule, ±inf
    included; a pixel with a NaN maximum gets class 0); confidence = the largest softmax probability,
    1 / sum_k exp(l_k - max_l). Only cheap reductions over the class axis: the max, the first
    index where the logit equals it (the max of K..1 weights on uint8 masks), one exp-sum written
    into `work` (a reused B×K×H×W float32 buffer of the same layout, when given).
    confidence=False skips the exp-sum, about half the time (a ROS node publishing labels only):
    the labels are the same.
    """
    size = tuple(size)
    x = logits.float()
    if tuple(x.shape[2:]) != size:  # channels-last: the upsampling kernel vectorises over classes
        x = F.interpolate(x.contiguous(memory_format=torch.channels_last), size=size, mode="bilinear",
                          align_corners=False)
    up = x.to(logits.dtype).contiguous() if keep_logits else None
    k = x.shape[1]
    top = x.amax(dim=1, keepdim=True)
    weights = torch.arange(k, 0, -1, device=x.device, dtype=torch.uint8 if k < 256 else torch.int32).view(1, k, 1, 1)
    first = ((x == top) * weights).amax(dim=1)  # x == max, not x - max == 0: +inf - +inf is NaN
    labels = (k - first.long()).remainder_(k)  # no class equal to the max (NaN logits): class 0
    if not confidence:
        return labels, None, up
    fits = (work is not None and work.shape == x.shape and work.dtype == torch.float32 and work.device == x.device
            and work.stride() == x.stride() and work.data_ptr() != logits.data_ptr())
    shifted = torch.sub(x, top, out=work) if fits else x - top  # never in place in the caller's logits
    conf = shifted.exp_().sum(dim=1).reciprocal_()
    return labels, conf, up


class Workspace:
    """One reusable post-processing buffer per calling thread, on the CPU, for single frames up to
    WORKSPACE_MAX_BYTES: a stream post-processes every frame at one size, and a fresh 12-50 MB
    buffer per frame cost thousands of page faults each time. Batches, bigger frames and GPUs
    (whose caching allocator already reuses memory) allocate per call, so nothing large is kept."""

    def __init__(self):
        self._local = threading.local()

    def get(self, logits: torch.Tensor, frame: tuple[int, int]) -> torch.Tensor | None:
        shape = (logits.shape[0], logits.shape[1], *frame)
        if logits.device.type != "cpu" or shape[0] != 1 or 4 * shape[1] * shape[2] * shape[3] > WORKSPACE_MAX_BYTES:
            return None
        layout = torch.channels_last if tuple(logits.shape[2:]) != tuple(frame) else torch.contiguous_format
        work = getattr(self._local, "buf", None)
        if work is None or tuple(work.shape) != shape or not work.is_contiguous(memory_format=layout):
            work = self._local.buf = torch.empty(shape).contiguous(memory_format=layout)
        return work
