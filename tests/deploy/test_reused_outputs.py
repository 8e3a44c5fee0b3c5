"""Engine outputs handed out without a copy: a held result is never overwritten, a dropped one is reused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asymformer.deploy.backends import build_backend
from asymformer.deploy.common import ReusedOutputs


class _CountingSlot:
    """A stand-in engine run: writes feeds["x"] into its own buffer."""

    made = 0

    def __init__(self):
        _CountingSlot.made += 1
        self.array = np.zeros(4, np.float32)

    def run(self, feeds):
        self.array[:] = feeds["x"]


def _call(outputs, value):
    return torch.from_numpy(outputs({"x": np.float32(value)}))


def test_dropped_result_is_reused_in_place():
    _CountingSlot.made = 0
    outputs = ReusedOutputs(_CountingSlot)
    first = _call(outputs, 1)
    ptr = first.data_ptr()
    del first
    second = _call(outputs, 2)
    assert second.data_ptr() == ptr and float(second[0]) == 2
    del second
    for v in range(3, 10):  # a loop that drops each result before the next call: one buffer
        assert float(_call(outputs, v)[0]) == v
    assert _CountingSlot.made == 1


def test_held_results_and_their_views_are_never_overwritten():
    _CountingSlot.made = 0
    outputs = ReusedOutputs(_CountingSlot, capacity=2)
    a = _call(outputs, 1)
    view = a[1:].numpy()  # a numpy view of a slice: holds the buffer too
    del a
    b = _call(outputs, 2)
    c = _call(outputs, 3)  # both buffers held (a's through its view): c must be a copy
    assert view[0] == 1 and float(b[0]) == 2 and float(c[0]) == 3
    d = _call(outputs, 4)
    assert view[0] == 1 and float(b[0]) == 2 and float(c[0]) == 3 and float(d[0]) == 4
    assert _CountingSlot.made == 3  # two handed-out buffers and one scratch, however many are held
    del view, b
    e = _call(outputs, 5)
    assert float(e[0]) == 5 and float(c[0]) == 3 and float(d[0]) == 4


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_engine_results_survive_later_calls(backend, small_model):
    """The real engines: results held across later calls keep their values; a loop that keeps
    only the latest result runs on reused buffers."""
    pytest.importorskip("onnxruntime" if backend == "onnxruntime" else "openvino")
    g = torch.Generator().manual_seed(0)
    inputs = [(torch.randn(1, 3, 64, 64, generator=g), torch.randn(1, 1, 64, 64, generator=g)) for _ in range(4)]
    fn, _ = build_backend(backend, small_model, *inputs[0])
    with torch.inference_mode():
        refs = [small_model(r, d) for r, d in inputs]
        ptrs = set()
        for i in range(6):
            out = fn(*inputs[i % 4])
            assert float((out - refs[i % 4]).abs().max()) <= 1e-4
            ptrs.add(out.data_ptr())
            del out
        assert len(ptrs) == 1, "a loop that drops each result should reuse one buffer"
        held = [fn(r, d) for r, d in inputs]  # more than the pool holds: the last ones are copies
        later = [fn(*inputs[i % 4]) for i in range(3)]
        for out, ref in zip(held + later, refs + refs[:3]):  # all intact after the later calls
            assert float((out - ref).abs().max()) <= 1e-4
