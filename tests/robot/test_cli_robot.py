"""`asymformer predict --bag ...` and `predict --intrinsics` (PLY) end to end through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asymformer.cli import main

from . import bagfiles as B
from .test_bags import read_bag

TOPICS = ["--rgb-topic", B.RS_COLOR, "--depth-topic", B.RS_DEPTH, "--camera-info-topic", B.RS_INFO]


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("asymformer predict: error: "), err
    return err[0]


def test_predict_bag_end_to_end_with_report(tmp_path, tiny_checkpoint, capsys):
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=3, color="jpeg", depth="compressedDepth"))
    rep = tmp_path / "report.json"
    argv = ["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(src), *TOPICS, "--out", str(tmp_path / "out"),
            "--report", str(rep), "--no-progress", "--namespace", "seg"]
    assert main(argv) == 0
    line = capsys.readouterr().out.strip()
    assert "3 frames from 3 pairs" in line and "points: written for 3 of 3 frames" in line
    report = json.loads(rep.read_text())
    assert report["frames"] == 3 and report["bags"][0]["topics"]["outputs"]["labels"] == "/seg/labels"
    got = read_bag(tmp_path / "out")
    assert {"/seg/labels", "/seg/confidence", "/seg/overlay", "/seg/points", "/seg/class_info", B.RS_COLOR} <= set(got)
    assert json.loads(got["/seg/class_info"][0][1].data)["classes"][2]["name"] == "chair"
    label_info = got["/seg/label_info"][0][1]  # vision_msgs/LabelInfo, decoded from the bag's own definition
    assert [(c.class_id, c.class_name) for c in label_info.class_map][2] == (2, "chair") and label_info.threshold == 0
    assert got["/seg/confidence"][0][1].encoding == "32FC1"
    assert main(argv) == 2  # the output exists now
    assert "pass --overwrite" in _err(capsys)
    assert main([*argv, "--overwrite", "--outputs", "labels,confidence", "--no-copy-input", "--storage", "sqlite3",
                 "--confidence-encoding", "mono8"]) == 0
    got = read_bag(tmp_path / "out")
    assert set(got) == {"/seg/labels", "/seg/confidence", "/seg/class_info", "/seg/label_info"}
    assert got["/seg/confidence"][0][1].encoding == "mono8"  # 0-255, as Nav2's semantic layer reads
    assert (tmp_path / "out" / "out.db3").is_file()


def test_missing_topics_list_the_bag(tmp_path, tiny_checkpoint, capsys):
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=1))
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(src), "--out", str(tmp_path / "o")]) == 2
    msg = _err(capsys)
    assert "--bag needs --rgb-topic and --depth-topic" in msg and f"--depth-topic {B.RS_DEPTH}" in msg
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(src), "--rgb-topic", "/nope",
                 "--depth-topic", B.RS_DEPTH, "--out", str(tmp_path / "o")]) == 2
    assert "no topic '/nope'" in _err(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, message", [
    (["--rgb", "a.png", "--depth", "b.png"], "drop --rgb/--depth"),
    (["--panel"], "--panel are for image files"),
    (["--outputs", "points", "--rgb-topic", "a", "--depth-topic", "b"], "--outputs points needs intrinsics"),
    (["--slop", "-1", "--rgb-topic", "a", "--depth-topic", "b"], "--slop must be between 0 and 10"),
])
def test_bad_bag_options_are_one_line(tmp_path, tiny_checkpoint, capsys, argv, message):
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=1))
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(src), "--out", str(tmp_path / "o"),
                 *argv]) == 2
    assert message in _err(capsys)


def test_several_recordings_shards_never_collide(tmp_path, tiny_checkpoint, capsys):
    for sub in ("day1", "day2"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        B.write_rosbag2(tmp_path / "in" / sub / "rec", B.realsense(n=1))
    B.write_rosbag2(tmp_path / "in" / "day1" / "other", B.realsense(n=1))
    base = ["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(tmp_path / "in" / "day1"),
            str(tmp_path / "in" / "day2" / "rec"), *TOPICS, "--out", str(tmp_path / "out"), "--no-progress",
            "--report", str(tmp_path / "r.json")]
    assert main([*base, "--shard", "0/2"]) == 0
    assert main([*base, "--shard", "1/2"]) == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["day1_rec", "day1_rec.json", "day2_rec", "day2_rec.json",
                                                     "other", "other.json"]
    r0, r1 = (json.loads((tmp_path / f"r.shard-{k}-of-2.json").read_text()) for k in (0, 1))
    assert [len(r0["bags"]), len(r1["bags"])] == [2, 1] and r0["shard"] == [0, 2]
    assert len(read_bag(out / "other")["/asymformer/labels"]) == 1
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:  # argparse's own one-line error
        main([*base, "--shard", "2/2"])
    assert exc.value.code == 2 and "--shard: needs 0 <= K < N" in capsys.readouterr().err


def test_files_with_intrinsics_write_ply_equal_to_a_hand_back_projection(tmp_path, tiny_checkpoint):
    from plyfile import PlyData

    from asymformer.data.io import write_png

    rgb, mm = B.scene(0)
    write_png(tmp_path / "a_rgb.png", rgb)
    write_png(tmp_path / "a_depth.png", mm)
    fx, fy, cx, cy = B.K
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--rgb", str(tmp_path / "a_rgb.png"), "--depth",
                 str(tmp_path / "a_depth.png"), "--out", str(tmp_path / "pred"), "--intrinsics", f"{fx},{fy},{cx},{cy}",
                 "--max-depth", "2.5", "--no-progress"]) == 0
    ply = PlyData.read(str(tmp_path / "pred" / "a.ply"))
    v = ply["vertex"]
    z = mm.astype(np.float32) / 1000
    keep = (z > 0) & (z <= 2.5)
    rows, cols = np.nonzero(keep)
    assert len(v) == keep.sum() > 0
    np.testing.assert_allclose(v["x"], (cols - cx) * z[keep] / fx, rtol=1e-5)
    np.testing.assert_allclose(v["y"], (rows - cy) * z[keep] / fy, rtol=1e-5)
    np.testing.assert_allclose(v["z"], z[keep], rtol=1e-6)
    assert "class 0 wall" in ply.comments


def test_file_mode_refuses_bag_options(tmp_path, tiny_checkpoint, capsys):
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--rgb", "x.png", "--depth", "y.png",
                 "--out", str(tmp_path / "o"), "--rgb-topic", "/a"]) == 2
    assert "--rgb-topic is for --bag recordings" in _err(capsys)
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "o")]) == 2
    assert "needs --rgb and --depth" in _err(capsys)
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--rgb", "x.png", "--depth", "y.png",
                 "--out", str(tmp_path / "o"), "--intrinsics", "1,2"]) == 2
    assert "--intrinsics" in _err(capsys)


def test_no_pairs_within_slop_is_a_failure_naming_the_offset_and_the_slop_that_pairs(tmp_path, tiny_checkpoint,
                                                                                      capsys):
    """Nothing paired: exit 0 and a bag of copied inputs, the offset named nowhere; now a failure whose
    line gives the median colour-depth offset and the --slop that would pair them."""
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=2, jitter_ms=(15,)))
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(src), *TOPICS, "--out",
                 str(tmp_path / "out"), "--slop", "0.01", "--no-progress"]) == 2
    err = _err(capsys)
    assert "none of 2 colour and 2 depth messages pair within --slop 0.01 s" in err
    assert "depth is stamped a median 15.0 ms after colour" in err and "--slop 0.020 would pair them" in err
    assert not (tmp_path / "out").exists()  # no "labelled" bag holding only copies


def test_missing_extra_is_one_line_naming_it(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "rosbags" else real(name, *a))
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(tmp_path), "--out",
                 str(tmp_path / "o")]) == 2
    assert "predict --bag needs rosbags: pip install 'asymformer[robots]'" in _err(capsys)
