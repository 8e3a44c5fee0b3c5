"""Pieces every inference backend shares (a leaf: imports nothing else from deploy/).

Backends, `optimize_for_inference`, `benchmark` and `export` all need example inputs, a folded
copy of the model that leaves the caller's model alone, and a way to say "not here" without a
traceback; they live here so the modules that use them do not import each other.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import sys

import numpy as np
import torch


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (no GPU, package missing, export failed); the message says why."""


def example_inputs(batch: int, height: int, width: int, seed: int = 0):
    """Normalised-looking random inputs (unit scale), fixed by `seed`, on the CPU."""
    if height < 32 or width < 32 or batch < 1:
        raise ValueError(f"example size must be batch >= 1 and at least 32×32, got {batch}×{height}×{width}")
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 3, height, width, generator=g),
            torch.randn(batch, 1, height, width, generator=g))


def fused_copy(model: torch.nn.Module, device=None, dtype: torch.dtype | None = None) -> torch.nn.Module:
    """A folded eval copy on `device` in `dtype` (default: where the model is); the caller's
    model is never moved or modified (it is the eager reference). The dtype is applied before
    folding, so each fold checks that its product fits that dtype."""
    m = copy.deepcopy(model).eval()
    if device is not None or dtype is not None:
        m = m.to(device=device, dtype=dtype)
    return m.fuse() if hasattr(m, "fuse") else m


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float().cpu() - b.detach().float().cpu()).abs().max())


class ShapeGuard:
    """Run a shape-specialised callable on its shape, the general model on any other shape."""

    def __init__(self, fn, shapes, fallback, name: str):
        self.fn, self.shapes, self.fallback, self.name = fn, shapes, fallback, name

    def __call__(self, rgb, depth):
        if (tuple(rgb.shape), tuple(depth.shape)) == self.shapes:
            return self.fn(rgb, depth)
        return self.fallback(rgb, depth)


class PerShape:
    """Run a shape-specialised callable built on demand for each new input shape (then cached).

    INT8 ONNX files and OpenVINO models are compiled for one shape; a new shape builds a new one
    (tens of seconds) instead of silently running another precision.
    """

    def __init__(self, factory, rgb, depth):
        self.factory, self.cache = factory, {}
        self.cache[self._key(rgb, depth)] = factory(rgb, depth)

    @staticmethod
    def _key(rgb, depth):
        return tuple(rgb.shape), tuple(depth.shape)

    def __call__(self, rgb, depth):
        key = self._key(rgb, depth)
        if key not in self.cache:
            self.cache[key] = self.factory(rgb, depth)
        return self.cache[key](rgb, depth)


def no_grad(fn):
    """Wrap `fn(rgb, depth)` to run in inference mode."""
    def run(rgb, depth):
        with torch.inference_mode():
            return fn(rgb, depth)
    return run


@contextlib.contextmanager
def stdout_to_stderr():
    """Send anything native libraries print to stdout (ONNX Runtime / TensorRT notices) to
    stderr for the block, so JSON printed on stdout stays parseable."""
    with contextlib.redirect_stdout(sys.stderr):  # Python-level prints
        try:
            sys.__stdout__.flush()
            saved = os.dup(1)
        except (AttributeError, OSError, ValueError):  # no real stdout (closed): nothing more to protect
            yield
            return
        try:
            os.dup2(2, 1)  # native libraries write to file descriptor 1
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


@contextlib.contextmanager
def quiet_libraries():
    """Hold back what quantisers tell their own developers (ONNX Runtime quantisation's "consider
    pre-processing" advice on the root logger, NNCF's progress bars): the user did not call those
    libraries and cannot act on it. The held-back text is shown only if the block fails."""
    held = io.StringIO()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(held), contextlib.redirect_stderr(held):
            yield
    except BaseException:
        sys.stderr.write(held.getvalue())
        raise
    finally:
        root.setLevel(level)


class ReusedOutputs:
    """Engine outputs handed to the caller without a copy; a buffer is rewritten only once free.

    Copying a 40×480×640 logit map (49 MB) out of an engine into new memory cost 6-8 % of an
    OpenVINO call on a 2-core VM, and 0.2.0 copied twice: the copy, and the page faults of fresh
    memory on every call (benchmarks/RESULTS.md, benchmarks/engine_outputs.py). Instead each slot is an engine run
    that writes into a buffer it keeps, and the caller gets that buffer. Every tensor, view or
    array made from it holds one Python reference to it (torch.from_numpy keeps its ndarray
    alive), so a buffer whose reference count is back to its count when made is free and is
    written again, and one still held anywhere never is. `capacity` slots cover the usual loop
    (`out = run(frame)` holds the previous result during the next call); beyond that, results
    are copies from a scratch slot, so memory stays bounded when a caller keeps many (an
    OpenVINO slot is one more infer request: +53 MB RSS at 480×640).

    `new_slot()` returns an object with `.array` (the buffer) and `.run(feeds)` (fills it).
    """

    def __init__(self, new_slot, capacity: int = 2):
        self.new_slot, self.capacity = new_slot, capacity
        self.slots, self.scratch = [], None

    def _free_slot(self):
        for slot in self.slots:
            if sys.getrefcount(slot.array) == slot.free_count:
                return slot
        if len(self.slots) < self.capacity:
            slot = self.new_slot()
            slot.free_count = sys.getrefcount(slot.array)  # the same expression as the test above
            self.slots.append(slot)
            return slot
        return None

    def __call__(self, feeds):
        slot = self._free_slot()
        if slot is None:  # the caller holds every buffer: hand out a copy instead
            if self.scratch is None:
                self.scratch = self.new_slot()
            self.scratch.run(feeds)
            return self.scratch.array.copy()
        slot.run(feeds)
        return slot.array


class _OrtSlot:
    """An ONNX Runtime run that writes its logits into `array` (I/O binding, no output copy)."""

    def __init__(self, sess, shape):
        self.sess, self.binding = sess, sess.io_binding()
        self.array = np.empty(shape, np.float32)
        self.binding.bind_output("logits", "cpu", 0, np.float32, list(shape), self.array.ctypes.data)

    def run(self, feeds):
        for name, value in feeds.items():
            self.binding.bind_cpu_input(name, value)
        self.sess.run_with_iobinding(self.binding)


def numpy_feeds(rgb: torch.Tensor, depth: torch.Tensor) -> dict:
    """The inputs as contiguous float32 host arrays by input name (no copy when they already are)."""
    return {"rgb": np.ascontiguousarray(rgb.detach().cpu().numpy(), np.float32),
            "depth": np.ascontiguousarray(depth.detach().cpu().numpy(), np.float32)}


def ort_runner(sess):
    """`(rgb, depth) -> logits` tensors through an ONNX Runtime session (inputs read from the host).

    A graph with a static output shape writes straight into reused buffers (`ReusedOutputs`);
    one with dynamic axes returns what ONNX Runtime allocates."""
    shape = next(o.shape for o in sess.get_outputs() if o.name == "logits")
    static = all(isinstance(n, int) for n in shape)
    outputs = ReusedOutputs(lambda: _OrtSlot(sess, shape)) if static else None

    def run(rgb, depth):
        feeds = numpy_feeds(rgb, depth)
        if outputs is None:
            return torch.from_numpy(sess.run(["logits"], feeds)[0])
        return torch.from_numpy(outputs(feeds))
    return run


def ort_session(path, providers=None, threads: int | None = None, spin: bool = False):
    """An ONNX Runtime session with full graph optimisation and the thread count torch uses
    (`threads` overrides it; `asymformer.devices.set_threads` sets torch's for every runtime).

    Worker spinning is off by default: on a CPU shared with other processes (a robot's other
    nodes, a shared build machine) spinning threads steal the cores the work needs, and turning
    it off was faster under load (benchmarks/RESULTS.md, "ORT worker spinning").
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailable("onnxruntime is not installed: pip install asymformer[onnx]") from None
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.log_severity_level = 3  # errors only: its graph-optimiser notes are not the user's to act on
    return ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])
