import json

import pytest

import asymformer
from asymformer.cli import main


def test_train_stop_resume_then_evaluate_via_cli(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--data", str(tiny_data), "--model", "asymformer_b0_a", "--epochs", "1", "--batch-size", "4",
              "--lr", "1e-3", "--crop-size", "64x64", "--base-size", "64x64", "--eval-size", "64x64",
              "--workers", "0", "--val-every", "1", "--no-progress"]
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"normalization": "imagenet", "scale_range": [1.0, 1.25], "tensorboard": False,
                               "log_every": 1}))
    assert main(["train", "--out", str(run), "--config", str(cfg), "--stop-after", "1", *common]) == 75
    assert "--resume" in capsys.readouterr().out
    assert main(["train", "--out", str(run), "--config", str(cfg), *common]) == 2  # never overwrite a run
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    assert "finished at iteration 2/2" in printed
    assert "best.safetensors was selected on the test split" in printed  # no separate validation split
    saved = json.loads((run / "config.json").read_text())
    assert saved["crop_size"] == [64, 64] and saved["normalization"] == "imagenet" and saved["epochs"] == 1

    val = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if '"val"' in x][-1]
    ckpt = run / "checkpoints" / "last.safetensors"
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(tiny_data), "--size", "64x64",
                 "--workers", "0", "--out", str(out), "--save-predictions", "1"]) == 0
    assert "mIoU" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    # The evaluate command and the validation inside training agree exactly.
    assert res["miou"] == pytest.approx(val["miou"], abs=1e-12)
    assert len(res["confusion_matrix"]) == 4 and res["scales"] == [1.0] and res["flip"] is False
    for name in ("per_class_iou.png", "confusion_matrix.png"):
        assert (out / name).stat().st_size > 500
    assert len((out / "per_class_iou.csv").read_text().splitlines()) == 1 + 4
    saved = sorted(p.name for p in (out / "predictions").glob("*.png") if p.name != "legend.png")
    assert len(saved) == 2 and saved[1] == saved[0].replace(".png", "_labels.png")  # colours + class ids
    assert (out / "predictions" / "legend.png").stat().st_size > 200
    ck = asymformer.load_model(ckpt)  # the checkpoint records what evaluate defaults to and draws with
    assert ck.info.eval_size == (64, 64) and len(ck.info.colors) == 4 and ck.info.train_size == (64, 64)
    assert ck.info.selected_on_split is None and ck.info.training["epoch"] == 1  # last: no selection
    best = asymformer.load_model(run / "checkpoints" / "best.safetensors")
    assert best.info.selected_on_split == "test"

    out2 = tmp_path / "eval_ms"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(tiny_data), "--size", "64x64",
                 "--workers", "0", "--out", str(out2), "--scales", "1.0,1.5", "--flip"]) == 0
    res2 = json.loads((out2 / "results.json").read_text())
    assert res2["scales"] == [1.0, 1.5] and res2["flip"] is True and res2["pixels"] == res["pixels"]


def test_cli_errors_are_one_line(tiny_data, tmp_path, capsys):
    rc = main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r"), "--device", "cpu"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "missing" in err and err.count("\n") == 1
    assert main(["train", "--data", str(tiny_data), "--out", str(tmp_path / "r"), "--amp", "fp16",
                 "--device", "cpu"]) == 2
    assert "fp16 needs a CUDA device" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"epochs": 1, "learning_rate": 3}')
    assert main(["train", "--data", str(tiny_data), "--out", str(tmp_path / "r"), "--config", str(bad)]) == 2
    assert "learning_rate" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(bad), "--data", str(tiny_data), "--scales", "a,b"]) == 2


def test_evaluate_figure_format_reaches_the_reports(tiny_data, tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    torch.manual_seed(0)
    model = asymformer.create_model("asymformer_b0_a", num_classes=4).eval()
    ckpt = tmp_path / "m.safetensors"
    asymformer.save_model(model, ckpt, class_names=["a", "b", "c", "d"], normalization="imagenet")
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(tiny_data), "--size", "64x64", "--workers",
                 "0", "--out", str(out), "--figure-format", "pdf", "--threads", "1", "--no-progress"]) == 0
    for name in ("per_class_iou.pdf", "confusion_matrix.pdf"):
        assert (out / name).read_bytes().startswith(b"%PDF")
    assert not (out / "confusion_matrix.png").exists()
