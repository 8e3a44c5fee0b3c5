"""predict's summary separates the warm-up from the speed a stream sees, even for one frame."""

import time

from PIL import Image

from asymformer.deploy import Segmenter
from asymformer.deploy.predict import pair_files, predict_files, predict_summary


class _SlowFirstCall:
    """A Segmenter whose first call costs 0.3 s more (what kernel creation and allocation cost)."""

    def __init__(self, seg):
        self.seg, self.calls = seg, 0

    def __getattr__(self, name):
        return getattr(self.seg, name)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 1:
            time.sleep(0.3)
        return self.seg(*args, **kwargs)


def test_one_frame_reports_speed_after_warm_up(small_model, make_frame, tmp_path):
    for sub in ("rgb", "depth"):
        (tmp_path / sub).mkdir()
    rgb, mm = make_frame(40, 56)
    Image.fromarray(rgb).save(tmp_path / "rgb" / "a.png")
    Image.fromarray(mm).save(tmp_path / "depth" / "a.png")
    seg = _SlowFirstCall(Segmenter(small_model, device="cpu", threads=1))
    s = predict_files(seg, pair_files(tmp_path / "rgb", tmp_path / "depth"), tmp_path / "out", progress=False)
    assert seg.calls == 2 and s["frames"] == 1 and s["threads"] == 1
    assert s["warmup_ms"] >= 300 and s["segmenter_ms_per_frame"] < 250  # the warm-up is not the speed
    assert s["segmenter_fps"] == round(1000 / s["segmenter_ms_per_frame"], 3) or abs(
        s["segmenter_fps"] - 1000 / s["segmenter_ms_per_frame"]) < 0.01 * s["segmenter_fps"]
    assert s["end_to_end_ms_per_frame"] >= s["warmup_ms"]  # the whole run includes it
    text = predict_summary(s)
    assert text.startswith("1 frame -> ") and "ms per frame" in text and "warm-up call of" in text
    assert "whole run:" in text and "1 thread)" in text
