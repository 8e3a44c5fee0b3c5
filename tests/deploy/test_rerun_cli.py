"""`asymformer predict --rerun-save FILE.rrd`: the recording holds each file's segmentation (the
same labels as <name>_labels.png), its RGB and depth, with the checkpoint's class names."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from asymformer.cli import main

# tests/outputs/rrd.py, the one .rrd reading helper, loaded by path: it is another test package
_spec = importlib.util.spec_from_file_location("rrd_helper", Path(__file__).parents[1] / "outputs" / "rrd.py")
rrd_helper = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rrd_helper)
image_of, read_rrd = rrd_helper.image_of, rrd_helper.read_rrd


def test_predict_writes_a_rerun_recording(checkpoint, make_frame, tmp_path, capsys):
    for i, name in enumerate(["a", "b"]):
        rgb, depth = make_frame(40, 56, seed=i)
        Image.fromarray(rgb).save(tmp_path / f"{name}_rgb.png")
        Image.fromarray(depth).save(tmp_path / f"{name}_depth.png")
    rrd = tmp_path / "views" / "run.rrd"
    rc = main(["predict", "--checkpoint", str(checkpoint), "--rgb", str(tmp_path / "*_rgb.png"), "--depth",
               str(tmp_path / "*_depth.png"), "--out", str(tmp_path / "out"), "--save-labels", "--device", "cpu",
               "--rerun-save", str(rrd), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    rec = read_rrd(rrd)
    ctx = rec["/world"][0]["AnnotationContext:context"][0]
    assert [c["class_description"]["info"]["label"] for c in ctx] == [f"c{i}" for i in range(5)]
    segs = rec["/world/camera/image/segmentation"]
    assert [s["frame"] for s in segs] == [0, 1] and "stamp" not in segs[0]  # files have no time of their own
    for i, name in enumerate(["a", "b"]):
        want = np.asarray(Image.open(tmp_path / "out" / f"{name}_labels.png"))
        np.testing.assert_array_equal(image_of(segs[i], "SegmentationImage", np.uint8, (40, 56)), want)
        depth_m = make_frame(40, 56, seed=i)[1] / 1000.0
        got = image_of(rec["/world/camera/image/depth"][i], "DepthImage", np.float32, (40, 56))
        np.testing.assert_allclose(got, depth_m, rtol=1e-6)
    assert len(rec["/stats/model_ms"]) == 2


def test_bad_rerun_save_is_one_line(checkpoint, make_frame, tmp_path, capsys):
    rgb, depth = make_frame(40, 56)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(depth).save(tmp_path / "depth.png")
    rc = main(["predict", "--checkpoint", str(checkpoint), "--rgb", str(tmp_path / "rgb.png"), "--depth",
               str(tmp_path / "depth.png"), "--out", str(tmp_path / "out"), "--device", "cpu",
               "--rerun-save", str(tmp_path / "run.mcap")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "must end in .rrd" in err
