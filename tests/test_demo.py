"""`asymformer demo` end to end at a tiny size (seconds), plus its planning helpers."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from asymformer import cli
from asymformer.demo import plan_epochs

TINY = ["--quick", "--epochs", "1", "--train-frames", "8", "--test-frames", "2", "--size", "64x64",
        "--threads", "1", "--no-progress"]


def test_demo_cli_writes_a_complete_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--minutes", "1", *TINY]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "prepare synthetic" not in captured.err  # --no-progress reaches the data step's bar too
    assert re.search(r"mIoU 0\.\d{4} on 2 test rooms \(never trained on; they also picked the best "
                     r"checkpoint\)", printed)
    assert f"report: {out}/report.html" in printed

    r = json.loads((out / "results.json").read_text())
    assert 0.0 <= r["miou"] <= 1.0 and r["evaluation"]["num_images"] == 2
    assert r["training"]["epochs"] == 1 and r["training"]["iterations"] == 2  # 8 frames / batch 4
    assert len(r["evaluation"]["per_class_iou"]) == len(r["evaluation"]["class_names"]) == 10
    assert r["command"].startswith(f"asymformer demo --out {out} --minutes 1 --seed 0 --epochs 1")
    speed = r["speed"][0]
    assert speed["model"] == "asymformer_b0_a" and speed["median_ms"] > 0 and speed["threads"] == 1

    html = (out / "report.html").read_text()
    assert f"mIoU {r['miou']:.4f}" in html
    links = re.findall(r'src="([^"]+)"', html)
    assert len(links) >= 7 and all(not link.startswith("/") for link in links)  # relative: the folder can move
    for link in links:
        with Image.open(out / link) as im:
            assert im.width > 50 and im.height > 10
    with Image.open(out / r["files"]["samples"][0]) as im:  # RGB | depth | prediction | truth, 2x enlarged
        assert im.width >= 4 * 128
    assert (out / "run" / "checkpoints" / "last.safetensors").is_file()

    # `make demo` twice: the data is reused and a fresh run replaces the old one
    stamp = (out / "data" / "classes.json").stat().st_mtime_ns
    assert cli.main(["demo", "--out", str(out), "--minutes", "1", *TINY]) == 0
    assert (out / "data" / "classes.json").stat().st_mtime_ns == stamp


def test_demo_rejects_a_bad_budget(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path), "--minutes", "0", *TINY]) == 2
    assert "--minutes must be positive" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--train-frames", "--test-frames", "--epochs"])
def test_demo_refuses_zero_counts_instead_of_using_the_default(flag, capsys):
    # 0 once fell through `n or default` to 320 rooms / 64 rooms / a budget-fitted run
    with pytest.raises(SystemExit) as stop:
        cli.build_parser().parse_args(["demo", flag, "0"])
    assert stop.value.code == 2
    assert f"argument {flag}: must be >= 1, got 0" in capsys.readouterr().err


def test_plan_epochs_fits_the_budget():
    # 10 iterations of 1 s per epoch (+10 % and 2 s overhead) and 1 s of validation: 14 s per epoch
    assert plan_epochs(140.0, 1.0, 10, 1.0) == 10
    assert plan_epochs(1.0, 1.0, 10, 1.0) == 1          # always at least one epoch
    assert plan_epochs(1e9, 1.0, 10, 1.0, max_epochs=50) == 50
