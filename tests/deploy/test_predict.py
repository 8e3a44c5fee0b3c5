import json

import numpy as np
import pytest
from PIL import Image

from asymformer.cli import main
from asymformer.deploy.predict import pair_files


def _write_frames(root, make_frame, names, size=(40, 56)):
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    (root / "labels").mkdir()
    for i, name in enumerate(names):
        rgb, depth = make_frame(*size, seed=i)
        Image.fromarray(rgb).save(root / "rgb" / f"{name}.jpg")
        Image.fromarray(depth).save(root / "depth" / f"{name}.png")
        Image.fromarray(np.full(size, i + 1, np.uint8)).save(root / "labels" / f"{name}.png")


def test_predict_cli_writes_every_output(checkpoint, make_frame, tmp_path, capsys):
    _write_frames(tmp_path, make_frame, ["a", "b"])
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(checkpoint), "--rgb", str(tmp_path / "rgb"),
               "--depth", str(tmp_path / "depth" / "*.png"), "--labels", str(tmp_path / "labels"),
               "--out", str(out), "--overlay", "--panel", "--attention", "--save-labels", "--device", "cpu"])
    assert rc == 0
    assert "FPS" in capsys.readouterr().out
    for name in ("a", "b"):
        color = np.asarray(Image.open(out / f"{name}.png"))
        labels = np.asarray(Image.open(out / f"{name}_labels.png"))
        assert color.shape == (40, 56, 3) and labels.shape == (40, 56) and labels.max() < 5
        assert np.asarray(Image.open(out / f"{name}_overlay.png")).shape == (40, 56, 3)
        panel = np.asarray(Image.open(out / f"{name}_panel.png"))
        assert panel.shape[1] == 4 * 56 + 3 * 4  # rgb | depth | prediction | ground truth
        att = np.asarray(Image.open(out / f"{name}_attention.png"))
        assert att.shape[1] == 4 * 56 + 3 * 4  # rgb | stage 2 | stage 3 | stage 4
    summary = json.loads((out / "predict.json").read_text())
    assert summary["frames"] == 2 and summary["segmenter_fps"] > 0 and "model_fps" not in summary
    assert not list(out.glob(".*tmp"))  # atomic writes leave no temporaries


def test_pairing_errors(make_frame, tmp_path):
    _write_frames(tmp_path, make_frame, ["a", "b"])
    (tmp_path / "depth" / "b.png").rename(tmp_path / "depth" / "c.png")
    with pytest.raises(ValueError, match="unpaired names.*b, c"):
        pair_files(tmp_path / "rgb", tmp_path / "depth")
    (tmp_path / "depth" / "c.png").unlink()
    with pytest.raises(ValueError, match="2 rgb files but 1 depth files"):
        pair_files(tmp_path / "rgb", tmp_path / "depth")
    with pytest.raises(FileNotFoundError, match="matches no files"):
        pair_files(str(tmp_path / "rgb" / "*.bmp"), tmp_path / "depth")


def test_predict_cli_unreadable_image_is_one_line(checkpoint, make_frame, tmp_path, capsys):
    _write_frames(tmp_path, make_frame, ["a"])
    (tmp_path / "rgb" / "a.jpg").write_bytes(b"not an image")
    rc = main(["predict", "--checkpoint", str(checkpoint), "--rgb", str(tmp_path / "rgb" / "a.jpg"),
               "--depth", str(tmp_path / "depth" / "a.png"), "--out", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # earlier lines are the progress bar
    assert rc == 2 and "Traceback" not in err and "cannot read RGB file" in last and "a.jpg" in last
