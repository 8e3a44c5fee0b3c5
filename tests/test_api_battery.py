"""The Python API's side of the one-clear-error contract: bad arguments to the public functions
raise ValueError (or FileNotFoundError / IsADirectoryError ...) with one line naming the argument,
never a TypeError or RuntimeError from deep inside torch or numpy. A new public argument should
add a case here."""

import numpy as np
import pytest
import torch

import asymformer
from asymformer.data.io import read_depth, read_rgb, resolve_depth_unit
from asymformer.deploy import Segmenter

TINY = dict(rgb_dims=(8, 8, 16, 16), rgb_depths=(1, 1, 1, 1), depth_dims=(8, 8, 16, 16), depth_heads=(1, 1, 2, 2),
            depth_depths=(1, 1, 1, 1), decoder_dim=8)
CLEAR = (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    torch.manual_seed(0)
    model = asymformer.create_model("asymformer_b0_a", num_classes=3, **TINY).eval()
    np.save(root / "obj.npy", np.array([1, 2], np.int64))
    (root / "dir").mkdir()
    return {"model": model, "seg": Segmenter(model, device="cpu"), "root": root,
            "rgb": np.zeros((40, 48, 3), np.uint8), "depth": np.full((40, 48), 1000, np.uint16)}


CASES = {
    "create_model name": lambda e: asymformer.create_model(None),
    "create_model classes 0": lambda e: asymformer.create_model("asymformer_b0_a", num_classes=0),
    "create_model classes str": lambda e: asymformer.create_model("asymformer_b0_a", num_classes="3"),
    "create_model fusion": lambda e: asymformer.create_model("asymformer_b0_a", fusion="nope"),
    "create_model depths": lambda e: asymformer.create_model("asymformer_b0_a", rgb_depths=(1, 1, 1, 0)),
    "load_model missing": lambda e: asymformer.load_model(e["root"] / "missing.safetensors"),
    "load_model folder": lambda e: asymformer.load_model(e["root"] / "dir"),
    "load_model npy": lambda e: asymformer.load_model(e["root"] / "obj.npy"),
    "save_model folder": lambda e: asymformer.save_model(e["model"], e["root"] / "dir"),
    "Segmenter str model": lambda e: Segmenter(123),
    "Segmenter size": lambda e: Segmenter(e["model"], device="cpu", size=(31, 64)),
    "Segmenter size float": lambda e: Segmenter(e["model"], device="cpu", size=(64.0, 64)),
    "Segmenter precision": lambda e: Segmenter(e["model"], device="cpu", precision="int4"),
    "Segmenter device": lambda e: Segmenter(e["model"], device="npu"),
    "Segmenter normalization": lambda e: Segmenter(e["model"], device="cpu", normalization=3),
    "Segmenter depth_unit": lambda e: Segmenter(e["model"], device="cpu", depth_unit=-1),
    "call None": lambda e: e["seg"](None, e["depth"]),
    "call rgb str": lambda e: e["seg"]("frame.png", e["depth"]),
    "call rgb object": lambda e: e["seg"](np.array([[None]]), e["depth"]),
    "call rgb bool": lambda e: e["seg"](e["rgb"] > 0, e["depth"]),
    "call rgb 2-D": lambda e: e["seg"](e["rgb"][..., 0], e["depth"]),
    "call rgb NaN": lambda e: e["seg"](np.full((40, 48, 3), np.nan, np.float32), e["depth"]),
    "call depth 3ch": lambda e: e["seg"](e["rgb"], np.ones((40, 48, 3), np.float32)),
    "call depth complex": lambda e: e["seg"](e["rgb"], e["depth"].astype(np.complex64)),
    "call depth size": lambda e: e["seg"](e["rgb"], e["depth"][:30]),
    "call depth unit": lambda e: e["seg"](e["rgb"], e["depth"], depth_unit=0),
    "call depth km": lambda e: e["seg"](e["rgb"], e["depth"], depth_unit=1),
    "call list shapes": lambda e: e["seg"]([e["rgb"], e["rgb"][:36]], [e["depth"], e["depth"][:36]]),
    "call empty list": lambda e: e["seg"]([], []),
    "call tiny": lambda e: e["seg"](e["rgb"][:8, :8], e["depth"][:8, :8]),
    "call tensor rgb hwc": lambda e: e["seg"](torch.zeros(40, 48, 3, dtype=torch.uint8), torch.ones(40, 48)),
    "read_rgb folder": lambda e: read_rgb(e["root"] / "dir"),
    "read_rgb object": lambda e: read_rgb(e["root"] / "obj.npy"),
    "read_depth unit": lambda e: read_depth(e["root"] / "obj.npy", depth_unit="mm"),
    "read_depth encoding": lambda e: read_depth(e["root"] / "obj.npy", encoding="log"),
    "resolve_depth_unit inf": lambda e: resolve_depth_unit(None, float("inf"), "x"),
    "open_dataset missing": lambda e: asymformer.data.open_dataset(e["root"] / "none", "train"),
    "open_dataset split": lambda e: asymformer.data.open_dataset(e["root"], ""),
    "count_macs size": lambda e: asymformer.models.count_macs(e["model"], 8, 8),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_api_arguments_raise_one_clear_error(env, case):
    with pytest.raises(CLEAR) as info:
        CASES[case](env)
    message = str(info.value)
    assert message and "\n" not in message.strip(), message
