"""`predict --bag ... --realtime`: frames go through the streaming runtime at their recorded rate;
the output bag holds exactly the processed frames (each the Segmenter's labels for that frame),
the report adds processed / dropped / latency, and --rerun-save records the same frames."""

from __future__ import annotations

import json
import threading
import time

import numpy as np

from asymformer.cli import main
from asymformer.deploy.segmenter import Segmenter
from asymformer.robot.realtime import RealtimeReplay

from . import bagfiles as B
from .live_helpers import rrd_reader
from .test_bags import read_bag

TOPICS = ["--rgb-topic", B.RS_COLOR, "--depth-topic", B.RS_DEPTH, "--camera-info-topic", B.RS_INFO]


def test_realtime_replay_writes_only_processed_frames(tmp_path, tiny_checkpoint, capsys):
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=12))
    rep, rrd = tmp_path / "report.json", tmp_path / "view.rrd"
    t0 = time.perf_counter()
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(src), *TOPICS, "--out",
                 str(tmp_path / "out"), "--report", str(rep), "--no-progress", "--realtime", "--realtime-speed", "100",
                 "--outputs", "labels,points", "--rerun-save", str(rrd), "--device", "cpu"]) == 0
    assert time.perf_counter() - t0 < 60
    line = capsys.readouterr().out.strip()
    r = json.loads(rep.read_text())["bags"][0]
    assert r["pairs"] == 12 and r["processed"] + r["dropped"] == 12 and r["realtime"]["errors"] == 0
    assert r["processed"] == r["frames"] >= 1 and r["dropped"] >= 1  # 100x the camera rate: the model cannot keep up
    assert 0 < r["latency_p50_ms"] <= r["latency_p99_ms"] and r["model_ms"] > 0
    assert r["realtime"]["decode_ms"] > 0  # pairs decoded when due, as a node decodes on arrival
    assert r["realtime"]["warm_up_s"] > 0  # the first frame built the model's path before the clock started
    assert f"realtime: {r['processed']} processed, {r['dropped']} dropped" in line
    got = read_bag(tmp_path / "out")
    labels = got["/asymformer/labels"]
    assert len(labels) == len(got["/asymformer/points"]) == r["processed"]
    seg = Segmenter(tiny_checkpoint, device="cpu")
    for t, msg in labels:
        i = (t - B.T0) // (33 * B.MS)  # the colour stamp says which recorded frame it is
        assert t == B.T0 + i * 33 * B.MS
        rgb, mm = B.scene(i)
        want = seg(rgb, mm.astype(np.float32) / 1000, depth_unit=1.0).labels
        np.testing.assert_array_equal(np.frombuffer(bytes(msg.data), np.uint8).reshape(64, 96), want)

    rec = rrd_reader().read_rrd(rrd)
    stamps = [row["stamp"] for row in rec["/world/camera/image/segmentation"]]
    assert stamps == [t for t, _ in labels] and len(rec["/stats/latency_ms"]) == r["processed"]
    assert "/world/camera/points" in rec and "/world/camera/image" in rec  # camera info -> pinhole, 3-D


def test_replay_keeps_the_recorded_pace(tiny_model):
    """Frames 100 ms apart, replayed at speed 1: the replay (warm-up aside) takes the recording's
    0.5 s, and each frame is submitted at its time (the warm-up alone used to satisfy this test)."""
    from types import SimpleNamespace

    seg = Segmenter(tiny_model, device="cpu")
    rgb, mm = B.scene(0)
    frames = [SimpleNamespace(stamp_ns=B.T0 + i * 100 * B.MS, rgb=rgb, depth_m=mm / 1000.0, index=i) for i in range(6)]
    replay = RealtimeReplay(seg, queue_depth=6)
    results = list(replay.results(frames))
    assert [x.index for x in results] == [0, 1, 2, 3, 4, 5]
    rep = replay.report()
    paced = rep["realtime"]["replay_seconds"] - rep["realtime"]["warm_up_s"]
    assert 0.5 * 0.95 <= paced <= 0.5 + 1.5, paced
    assert rep["realtime"]["late_submits"] == 0 and rep["realtime"]["gaps_skipped"] == 0
    assert rep["processed"] == 6 and rep["dropped"] == 0 and rep["realtime"]["submitted"] == 6


class _SlowOnce:
    """A Segmenter whose infer() is quick until `stall` is set, then blocks until `go` is set: the
    model runs late with a frame already prepared, so the pre-processing stage replaces it."""

    def __init__(self, seg):
        self.seg, self.device = seg, seg.device
        self.stall, self.go = threading.Event(), threading.Event()

    def preprocess(self, *a, **kw):
        return self.seg.preprocess(*a, **kw)

    def infer(self, r, d):
        if self.stall.is_set() and not self.go.is_set():
            assert self.go.wait(10)
        return self.seg.infer(r, d)

    def postprocess(self, *a, **kw):
        return self.seg.postprocess(*a, **kw)


def test_a_prepared_frame_replaced_before_the_model_took_it_is_counted_dropped(tiny_model):
    """Every submitted frame ends processed, dropped or failed, also the prepared frames the
    pre-processing stage replaces while the model runs late (that drop went uncounted)."""
    from asymformer.stream import StreamRunner

    slow = _SlowOnce(Segmenter(tiny_model, device="cpu"))
    rgb, mm = B.scene(0)
    runner = StreamRunner(slow, queue_depth=1, depth_unit=1.0, result_depth=256)
    for i in range(4):  # the model's timing is learnt on quick frames
        runner.submit(rgb, mm / 1000.0, i + 1)
        time.sleep(0.05)
    slow.stall.set()
    for i in range(4, 60):  # the model stalls; frames keep coming, the prepared one is replaced
        runner.submit(rgb, mm / 1000.0, i + 1)
        time.sleep(0.005)
    slow.go.set()
    stats = runner.close(drain=True)
    assert stats["submitted"] == 60 == stats["processed"] + stats["dropped"] + stats["errors"], stats
    assert stats["dropped"] >= 40


def test_realtime_is_for_bags(tmp_path, tiny_checkpoint, capsys):
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--rgb", "a.png", "--depth", "b.png", "--out",
                 str(tmp_path / "o"), "--realtime"]) == 2
    assert "--realtime replays --bag recordings" in capsys.readouterr().err


def test_the_replay_stall_warning_speaks_of_the_recording_not_a_camera(segmenter):
    """The runtime's stall warning asked whether "the camera" was running during a replay's wait."""
    from asymformer.stream.stages import stall_reason

    replay = RealtimeReplay(segmenter)
    replay.due_in_s = 4.2
    text = stall_reason(10.0, 0.0, 3, 4.0, {}, replay._stall_hint())
    assert "camera" not in text and "waiting 4.2 s for the recording's next frame" in text
