"""Tests written against bugs that were planted in the code and got through the suite: each one
fails on its planted bug (checked by planting it: see the comment on each).

(The fifth, an `atomic_write_bytes` that writes in place, is in test_write_failures.py.)
"""

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

import asymformer
from asymformer.cli import main
from asymformer.viz import palette

TINY = dict(rgb_dims=(8, 8, 16, 16), rgb_depths=(1, 1, 1, 1), depth_dims=(8, 8, 16, 16), depth_heads=(1, 1, 2, 2),
            depth_depths=(1, 1, 1, 1), decoder_dim=8)


def _tiny(num_classes=5, seed=0):
    torch.manual_seed(seed)
    return asymformer.create_model("asymformer_b0_a", num_classes=num_classes, **TINY).eval()


def test_fuse_keeps_batchnorm_eps_where_running_variances_are_small():
    """Planted: BatchNorm folded as gamma / sqrt(var) (eps dropped). With variances of the order of
    eps (1e-5) that is 20-70 % off per channel; with variances near 1 it hid under a 1.4 % margin."""
    model = _tiny(seed=1)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                var = (torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5) * m.eps  # 0.5 .. 2 eps
                m.running_var.copy_(var)
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2 - 0.1)
                # keep each BatchNorm's output scale near 1, so eps (not overflow) decides the difference
                m.weight.copy_(torch.sqrt(var + m.eps) * (torch.rand(var.shape, generator=g) + 0.5))
    g = torch.Generator().manual_seed(2)
    rgb, depth = torch.randn(2, 3, 64, 64, generator=g), torch.rand(2, 1, 64, 64, generator=g)
    with torch.no_grad():
        eager = model(rgb, depth)
        fused = copy.deepcopy(model).fuse()(rgb, depth)
    assert eager.abs().max() > 0.1  # a real signal, not everything squashed to zero
    torch.testing.assert_close(fused, eager, rtol=1e-4, atol=1e-4 * float(eager.abs().max()))


def test_panel_truth_column_has_the_colours_of_the_classes_for_one_and_zero_based_labels(tmp_path):
    """Planted: one-based ground truth drawn one class off (label i coloured as class i, not i-1)."""
    k, h, w = 5, 40, 50
    ckpt = tmp_path / "m.safetensors"
    asymformer.save_model(_tiny(k), ckpt)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "f_rgb.png")
    Image.fromarray(np.full((h, w), 2000, np.uint16)).save(tmp_path / "f_depth.png")
    one_based = np.repeat(np.arange(w)[None] * (k + 1) // w, h, axis=0).astype(np.uint8)  # bands 0 (void), 1..k
    Image.fromarray(one_based).save(tmp_path / "gt1.png")
    zero_based = np.where(one_based == 0, 255, one_based - 1).astype(np.uint8)
    Image.fromarray(zero_based).save(tmp_path / "gt0.png")
    colors = palette(k)
    expect = np.zeros((h, w, 3), np.uint8)  # void is black
    expect[one_based > 0] = colors[one_based[one_based > 0] - 1]
    for gt, base in (("gt1.png", "one_based"), ("gt0.png", "zero_based")):
        out = tmp_path / base
        assert main(["predict", "--checkpoint", str(ckpt), "--rgb", str(tmp_path / "f_rgb.png"), "--depth",
                     str(tmp_path / "f_depth.png"), "--labels", str(tmp_path / gt), "--labels-base", base, "--panel",
                     "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
        panel = np.asarray(Image.open(out / "f_panel.png").convert("RGB"))
        truth = panel[-h:, -w:]  # the last tile, below its title
        np.testing.assert_array_equal(truth, expect)


def test_best_miou_survives_a_resume(tmp_path, monkeypatch, capsys):
    """Planted: a resume that forgot the best mIoU, so a worse validation after it replaced
    best.safetensors. Validation is scripted (0.5, then 0.3, 0.4), so the worse ones come after."""
    import importlib

    train_mod = importlib.import_module("asymformer.engine.train")  # the module (the package exports train())
    scores = iter([0.5, 0.3, 0.4])

    def scripted(self):
        miou = next(scores)
        return {"miou": miou, "pixel_acc": miou, "mean_acc": miou, "per_class_iou": [miou] * self.num_classes,
                "pixels": 100}

    monkeypatch.setattr(train_mod._Run, "validate", scripted)
    run = tmp_path / "run"
    (tmp_path / "cfg.json").write_text('{"tensorboard": false}')
    common = ["--config", str(tmp_path / "cfg.json"), "--model", "asymformer_b0_a", "--batch-size", "2",
              "--crop-size", "32x32", "--base-size", "32x32",
              "--eval-size", "32x32", "--workers", "0", "--no-progress", "--device", "cpu", "--val-every", "1",
              "--warmup-epochs", "0"]
    assert main(["train", "--data", "synthetic:2:1", "--out", str(run), "--epochs", "3", "--stop-after", "1",
                 *common]) == 75
    assert main(["train", "--resume", str(run), "--workers", "0", "--no-progress"]) == 0
    vals = [json.loads(x)["miou"] for x in (run / "log.jsonl").read_text().splitlines() if '"val"' in x]
    assert vals == [0.5, 0.3, 0.4]
    state = torch.load(run / "checkpoints" / "state.pt", weights_only=True)
    assert state["best_miou"] == max(vals)
    best = asymformer.models.read_model_info(run / "checkpoints" / "best.safetensors")
    assert best.training["miou"] == max(vals) and best.training["epoch"] == 1
    capsys.readouterr()


@pytest.fixture(scope="module")
def int8_setup():
    """A tiny model whose INT8 paths are built once for the three entry points."""
    pytest.importorskip("onnxruntime")
    model = _tiny(seed=3)
    g = torch.Generator().manual_seed(4)
    rgb, depth = torch.randn(1, 3, 64, 64, generator=g), torch.rand(1, 1, 64, 64, generator=g) * 3
    with torch.no_grad():
        ref = model(rgb, depth)
    return model, rgb, depth, ref


def _int8_not_fp32(out: torch.Tensor, ref: torch.Tensor) -> None:
    """INT8 arithmetic leaves a trace an FP32 graph (ONNX Runtime or eager: ~1e-6 from eager) never does,
    while the classes stay those of FP32."""
    diff = float((out.float() - ref).abs().max())
    assert diff > 1e-4 * float(ref.abs().max()), f"max |int8 - fp32| = {diff:.2e}: the FP32 graph ran"
    assert (out.argmax(1) == ref.argmax(1)).float().mean() > 0.5


def test_int8_paths_really_run_an_integer_graph(int8_setup, monkeypatch):
    """Planted: Segmenter(precision="int8") / optimize_for_inference(precision="int8") / evaluate
    --precision int8 running the FP32 graph while reporting int8; only the export's metadata was checked."""
    from asymformer.deploy import Segmenter, optimize
    from asymformer.deploy.optimize import optimize_for_inference, wrap_for_evaluation

    monkeypatch.setitem(optimize.CANDIDATES, "int8", ("onnxruntime-int8",))  # NNCF calibration takes long

    model, rgb, depth, ref = int8_setup
    fn = optimize_for_inference(model, "cpu", 64, 64, precision="int8", candidates=["onnxruntime-int8"], iters=1)
    assert fn.backend == "onnxruntime-int8"
    _int8_not_fp32(fn(rgb, depth), ref)
    wrapped = wrap_for_evaluation(model, "int8", size=(64, 64))  # what evaluate --precision int8 runs
    _int8_not_fp32(wrapped(rgb, depth), ref)
    seg = Segmenter(model, device="cpu", size=(64, 64), precision="int8", normalization="imagenet")
    fp32 = Segmenter(model, device="cpu", size=(64, 64), normalization="imagenet")
    frame = (np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8),
             np.full((64, 64), 1500, np.uint16))
    _int8_not_fp32(torch.from_numpy(seg(*frame, return_logits=True).logits[None]),
                   torch.from_numpy(fp32(*frame, return_logits=True).logits[None]))
