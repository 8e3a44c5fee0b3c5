"""The one-line-error contract, enforced: every command run with a battery of bad arguments ends
with exit 2 and one line "asymformer <command>: error: ..." (or argparse's own one-line usage
error), never a traceback, never an exception escaping `main`.

New bad inputs belong here: a command that grows an option should grow a case. The cases run
in-process and fail before any real work, so the whole battery takes seconds.
"""

import numpy as np
import pytest
import torch
from PIL import Image

import asymformer
from asymformer.cli import main

TINY = dict(rgb_dims=(8, 8, 16, 16), rgb_depths=(1, 1, 1, 1), depth_dims=(8, 8, 16, 16), depth_heads=(1, 1, 2, 2),
            depth_depths=(1, 1, 1, 1), decoder_dim=8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Good and bad files for the cases: {name: path}."""
    root = tmp_path_factory.mktemp("battery")
    torch.manual_seed(0)
    asymformer.save_model(asymformer.create_model("asymformer_b0_a", num_classes=10, **TINY), root / "ck.safetensors")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / "a_rgb.png")
    Image.fromarray(rng.integers(500, 4000, (40, 48), dtype=np.uint16)).save(root / "a_depth.png")
    Image.fromarray(rng.integers(0, 256, (40, 48), dtype=np.uint8)).save(root / "a_depth8.png")
    (root / "empty.safetensors").write_bytes(b"")
    (root / "text.pth").write_text("not a checkpoint\n")
    (root / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    (root / "cfg_bad.json").write_text("{not json")
    (root / "cfg_list.json").write_text("[1, 2]")
    (root / "cfg_key.json").write_text('{"no_such_setting": 1}')
    (root / "cfg_nan.json").write_text('{"lr": NaN}')
    (root / "dir").mkdir()
    (root / "dataset").mkdir()
    (root / "dataset" / "classes.json").write_text('{"names": ["a", "b"]}')
    (root / "dataset" / "rgb").mkdir()
    return {p.name: str(p) for p in root.iterdir()} | {"root": str(root)}


def _cases(f):
    ck, rgb, depth, root = f["ck.safetensors"], f["a_rgb.png"], f["a_depth.png"], f["root"]
    out = f"{root}/out_never_written"
    pred = ["predict", "--checkpoint", ck, "--rgb", rgb, "--depth", depth, "--out", out, "--device", "cpu",
            "--no-progress"]
    ev = ["evaluate", "--checkpoint", ck, "--data", "synthetic:1:1", "--workers", "0", "--no-progress"]
    tr = ["train", "--data", "synthetic:2:1", "--out", out, "--batch-size", "2", "--no-progress", "--workers", "0"]
    ex = ["export", "--checkpoint", ck, "--out", f"{out}/m.onnx", "--size", "32x32", "--no-check"]
    be = ["benchmark", "--size", "32x32", "--iters", "1", "--warmup", "0", "--no-progress"]
    return [
        # predict: checkpoints
        *[[*pred[:2], bad, *pred[3:]] for bad in (f["empty.safetensors"], f["text.pth"], f["garbage.safetensors"],
                                                  f["dir"], f"{root}/missing.safetensors", "", rgb)],
        # predict: frames
        [*pred[:4], f["dir"], *pred[5:]], [*pred[:4], f"{root}/*.nothing", *pred[5:]],
        [*pred[:6], f["a_depth8.png"], *pred[7:]], [*pred[:4], depth, "--depth", rgb, *pred[7:]],
        [*pred, "--depth-unit", "0"], [*pred, "--depth-unit", "-1"], [*pred, "--depth-unit", "nan"],
        [*pred, "--depth-unit", "inf"], [*pred, "--depth-unit", "1"], [*pred, "--depth-unit", "1e-9"],
        [*pred, "--alpha", "2"], [*pred, "--alpha", "nan"], [*pred, "--size", "0x0"], [*pred, "--size", "16x16"],
        [*pred, "--size", "big"], [*pred, "--normalization", "nope"], [*pred, "--device", "gpu7"],
        [*pred, "--labels", f["dir"]], [*pred, "--labels", rgb, "--panel"], [*pred[:-2], "--out", ck],
        [*pred, "--labels-base", "two"], [*pred, "extra_positional.png"], [*pred, "--labels", rgb],
        [*pred, "--alpha", "0.3"], [*ex, "--calibration-frames", "4"],
        # evaluate
        [*ev[:2], f["dir"], *ev[3:]], [*ev[:2], f["garbage.safetensors"], *ev[3:]],
        [*ev[:4], f"{root}/no_such_data", *ev[5:]], [*ev[:4], f["dir"], *ev[5:]], [*ev[:4], "synthetic:x", *ev[5:]],
        [*ev[:4], "synthetic:0:0", *ev[5:]], [*tr[:2], "synthetic:100000000000:1", *tr[3:]],
        [*tr[:2], "synthetic:-1:1", *tr[3:]], [*tr[:2], "synthetic:1:1:1", *tr[3:]],
        [*ev[:4], f["dataset"], *ev[5:]], [*ev, "--scales", "0"],
        [*ev, "--scales", "a,b"], [*ev, "--scales", ""], [*ev, "--size", "1x1"], [*ev, "--batch-size", "0"],
        [*ev, "--precision", "int4"], [*ev, "--split", "nope"], [*ev, "--out", ck], [*ev, "--classes", "13"],
        [*ev, "--sensors", "kv1"], [*ev, "--depth-unit", "-2"], [*ev, "--workers", "-1"],
        [*ev, "--layout", "nope"], [*ev, "--save-predictions", "-3"],
        # train
        ["train"], ["train", "--data", "synthetic:2:1"], [*tr, "--epochs", "0"], [*tr, "--epochs", "-3"],
        [*tr, "--lr", "nan"], [*tr, "--lr", "-1"], [*tr, "--lr", "inf"], [*tr, "--batch-size", "0"],
        [*tr, "--crop-size", "8x8"], [*tr, "--eval-size", "0x5"], [*tr, "--model", "resnet50"],
        [*tr, "--config", f["cfg_bad.json"]], [*tr, "--config", f["cfg_list.json"]],
        [*tr, "--config", f["cfg_key.json"]], [*tr, "--config", f["cfg_nan.json"]],
        [*tr, "--config", f"{root}/missing.yaml"], [*tr, "--config", f["dir"]], [*tr, "--init-from", f["dir"]],
        [*tr, "--init-from", f["text.pth"]], [*tr, "--pretrained-rgb", f["garbage.safetensors"]],
        ["train", "--resume", f["dir"]], ["train", "--resume", f"{root}/no_run"],
        ["train", "--data", "synthetic:2:1", "--out", ck],
        [*tr, "--warmup-epochs", "-1"], [*tr, "--grad-clip", "-1"], [*tr, "--device", "tpu"],
        [*tr, "--time-limit", "-5"], [*tr, "--stop-after", "-1"], [*tr, "--classes", "13"],
        [*tr, "--weight-decay", "nan"], [*tr, "--val-every", "-1"], [*tr, "--save-every", "-1"],
        [*tr, "--seed", "-1"], [*tr, "--data", f["dataset"]],
        # export
        [*ex[:2], f["dir"], *ex[3:]], [*ex[:4], f"{out}/m.txt", *ex[5:]], [*ex[:4], f["dir"], *ex[5:]],
        [*ex, "--opset", "9"], [*ex, "--opset", "99"], [*ex, "--opset", "x"], [*ex, "--batch-size", "0"],
        [*ex[:-2], "--size", "8x8"], [*ex, "--calibration-data", f["dir"]], [*ex, "--int8", "--dynamic"],
        [*ex, "--int8", "--calibration-data", f"{root}/none"], [*ex, "--format", "tflite"],
        [*ex, "--batch-size", "100000000"],  # a 1.2 TB input tensor: out of memory, one line
        [*tr, "--time-limit", "nan"],
        # benchmark
        [*be, "--backends", "warp-drive"], [*be, "--backends", ""], [*be, "--iters", "0"], [*be, "--warmup", "-1"],
        [*be, "--threads", "0"], [*be, "--out", f["dir"]], [*be, "--checkpoint", f["dir"]],
        [*be, "--checkpoint", ck, "--model", "asymformer_b0_t"], [*be, "--model", "nope"],
        [*be[:1], "--size", "1x1", *be[3:]],
        # prepare / info / demo
        ["prepare"], ["prepare", "synthetic"], ["prepare", "synthetic", "--out", out, "--train-frames", "0"],
        ["prepare", "synthetic", "--out", out, "--train-frames", "1", "--size", "8x8"],
        ["prepare", "synthetic", "--out", ck, "--train-frames", "1"],
        ["prepare", "nyuv2", "--mat", f["dir"], "--splits", ck, "--mapping", ck, "--out", out],
        ["prepare", "nyuv2", "--mat", f"{root}/none.mat", "--splits", ck, "--mapping", ck, "--out", out],
        ["prepare", "sunrgbd", "--root", f"{root}/none", "--meta", ck, "--seg", ck, "--split", ck, "--out", out],
        ["info", "--size", "0x640"], ["info", "--num-classes", "0"], ["info", "--size", "x"],
        ["demo", "--minutes", "-1"], ["demo", "--minutes", "nan"], ["demo", "--size", "8x8"], ["demo", "--out", ck],
        ["nonsense-command"], [],
    ]


def _run(argv, capsys) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse: usage + one error line
        rc = exc.code
    except BaseException as exc:  # noqa: BLE001 - the contract is that nothing escapes
        pytest.fail(f"{argv}: {type(exc).__name__} escaped main: {exc}")
    return rc, capsys.readouterr().err


def test_bad_arguments_give_one_line_and_exit_2(files, capsys):
    failures = []
    for argv in _cases(files):
        rc, err = _run(argv, capsys)
        lines = [x for x in err.strip().splitlines() if x.strip()]
        errors = [x for x in lines if ": error: " in x]
        problem = None
        if "Traceback" in err:
            problem = "traceback"
        elif rc != 2:
            problem = f"exit {rc}"
        elif len(errors) != 1 or not errors[0].startswith("asymformer"):
            problem = "not one error line"
        elif not lines[-1].startswith("asymformer") or lines[-1] != errors[0]:
            problem = "the error is not the last line"
        if problem:
            failures.append(f"{' '.join(argv[:8])}{' ...' if len(argv) > 8 else ''}: {problem}: {err[-400:]!r}")
    assert not failures, "\n".join(failures)
