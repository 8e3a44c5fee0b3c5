"""`ModelInfo` (the one metadata record) and our model file codec: zero-copy reading, the
safetensors library both ways, 0.1 files."""

import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch as st
import torch

import asymformer
from asymformer.models import ModelInfo, info_of, read_model_info
from asymformer.models.serialization import FORMAT, read_safetensors, save_safetensors

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
TINY = dict(rgb_dims=(8, 8, 16, 16), rgb_depths=(1, 1, 1, 1), depth_dims=(8, 8, 16, 16), depth_heads=(1, 1, 2, 2),
            depth_depths=(1, 1, 1, 1), decoder_dim=8)


def _tiny(num_classes=3, **kwargs):
    torch.manual_seed(0)
    return asymformer.create_model("asymformer_b0_a", num_classes=num_classes, **TINY, **kwargs).eval()


def _full_info() -> ModelInfo:
    return ModelInfo(name="asymformer_b0_a", num_classes=2, kwargs={"cma_kv_downsample": (1, 2, 2)},
                     class_names=["wall", "floor"], colors=[[1, 2, 3], [4, 5, 6]], normalization="dformer",
                     train_size=[48, 64], eval_size=(64, 96), selected_on_split="val", fused=True,
                     source="test", training={"epoch": 3, "miou": 0.5})


def test_record_round_trips_through_json_and_normalises_its_fields():
    info = _full_info()
    assert info.class_names == ("wall", "floor") and info.colors == ((1, 2, 3), (4, 5, 6))
    assert info.train_size == (48, 64) and info.kwargs == {"cma_kv_downsample": [1, 2, 2]}
    assert info.normalization["name"] == "dformer" and len(info.normalization["rgb_std"]) == 3  # values
    d = json.loads(json.dumps(info.to_dict()))
    assert d["format_version"] == 2 and d["colors"] == [[1, 2, 3], [4, 5, 6]]
    assert ModelInfo.from_dict(d) == info
    assert ModelInfo.from_dict({**d, "added_later": 1}) == info  # newer minor additions are ignored
    assert info.replace(fused=False).fused is False and info.fused  # a copy; the record never changes


@pytest.mark.parametrize("bad, match", [
    (dict(num_classes=3, class_names=["a", "b"]), "2 class names given for a model with 3 classes"),
    (dict(num_classes=2, colors=[[0, 0, 0], [0, 0, 300]]), "'colors' must be 2"),
    (dict(num_classes=2, colors=[[0, 0, 0]]), "'colors' must be 2"),
    (dict(num_classes=2, colors=[[0, 0, 0], [0, 0, 1.5]]), "'colors' must be 2 .* integers"),
    (dict(num_classes=0), "num_classes must be an integer >= 1"),
    (dict(kwargs={"num_classes": 3}), "num_classes is its own field"),
    (dict(eval_size=(64,)), "eval_size must be"),
    (dict(normalization="nope"), "normalization"),
])
def test_record_refuses_values_that_do_not_fit(bad, match):
    with pytest.raises(ValueError, match=match):
        ModelInfo(**bad)


def test_a_newer_format_is_one_clear_error():
    with pytest.raises(ValueError, match="format 3 is newer.*upgrade asymformer"):
        ModelInfo.from_dict({"format_version": 3, "name": "asymformer_b0_a"})


def test_create_model_fuse_and_the_moved_attributes():
    model = _tiny(fusion="lafs")
    assert model.info == ModelInfo(name="asymformer_b0_a", num_classes=3, kwargs={**TINY, "fusion": "lafs"})
    assert not model.info.fused and model.fuse().info.fused and model.fuse().info.fused  # idempotent
    with pytest.raises(AttributeError, match=r"model.info = model.info.replace\(class_names=...\)"):
        model.class_names = ["a", "b", "c"]  # would be silently ignored: refused, naming the new place
    with pytest.raises(AttributeError, match="model.normalization is now model.info.normalization"):
        model.normalization  # noqa: B018
    with pytest.raises(ValueError, match="says 4 classes but the model has 3"):
        model.info = model.info.replace(num_classes=4, class_names=None)
    with pytest.raises(TypeError, match="must be a ModelInfo"):
        model.info = {"name": "x"}


def test_info_of_any_module():
    model = _tiny()
    assert info_of(torch.nn.DataParallel(model)) is model.info  # wrappers are looked through

    class Foreign(torch.nn.Module):
        num_classes = 7

    assert info_of(Foreign()) == ModelInfo(num_classes=7)
    assert info_of(torch.nn.Conv2d(1, 1, 1)) is None


def test_0_1_file_loads_with_its_metadata_and_weights():
    """A file written by asymformer 0.1's save_model (tests/fixtures/models/README.md)."""
    path = FIXTURES / "tiny_0.1.safetensors"
    model = asymformer.load_model(path)
    info = model.info
    assert info == read_model_info(path)
    assert info.name == "asymformer_b0_a" and info.num_classes == 3 and info.kwargs == ModelInfo(kwargs=TINY).kwargs
    assert info.class_names == ("wall", "floor", "chair") and info.colors[2] == (70, 80, 90)
    assert info.normalization["name"] == "imagenet" and info.eval_size == (64, 96) and info.train_size == (48, 64)
    assert info.selected_on_split == "val" and info.training == {"epoch": 2, "iteration": 20, "zero_depth": False,
                                                                 "miou": 0.25}
    g = torch.Generator().manual_seed(1)
    rgb, depth = torch.randn(1, 3, 32, 48, generator=g), torch.randn(1, 1, 32, 48, generator=g)
    with torch.no_grad():
        out = model(rgb, depth).numpy()
    np.testing.assert_allclose(out, np.load(FIXTURES / "tiny_0.1_logits_32x48_seed1.npy"), rtol=0, atol=1e-5)


def test_0_1_colours_that_do_not_fit_fall_back_to_the_palette():
    header = {"model_name": "asymformer_b0_a", "model_kwargs": {"num_classes": 2},
              "metadata": {"colors": [[1, 2, 3]], "model": "asymformer_b0_a"}}
    info = ModelInfo.from_dict(header)  # format_version 1 is implied by the keys of 0.1
    assert info.colors is None and info.num_classes == 2 and info.training == {}


def test_official_weights_get_the_released_info(tmp_path):
    """load_model on the official .pth goes through load_official_state_dict (test_equivalence loads a
    full-size one); a tiny SUNRGBD-sized stand-in keeps this fast."""
    path = tmp_path / "official.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in _tiny(37).state_dict().items()}}, path)
    model = asymformer.load_official_state_dict(_tiny(37), path)
    info = model.info
    assert info.name == "asymformer_b0_a" and info.num_classes == 37 and info.source == "official checkpoint"
    assert info.normalization["name"] == "nyuv2_official" and info.class_names[-1] == "bag"  # SUNRGBD-37
    assert len(info.colors) == 37 and not info.fused
    with pytest.raises(ValueError, match="before model.fuse"):
        asymformer.load_official_state_dict(model.fuse(), path)


def _mixed_tensors():
    g = torch.Generator().manual_seed(0)
    return {"big": torch.randn(1000, 1000, generator=g), "odd": torch.randn(5, generator=g).half(),
            "count": torch.tensor(7), "bf": torch.randn(3, 3, generator=g).bfloat16(),
            "mask": torch.tensor([True, False, True]), "empty": torch.zeros(0, 4),
            "byte": torch.arange(3).to(torch.uint8)}


def test_reader_returns_views_of_one_mapping_of_the_file(tmp_path):
    """No double copy: the tensors read lie in one mapping of the file, and the read allocates no
    copy of the file's bytes, so loading a model costs one copy (into the parameters)."""
    tensors = _mixed_tensors()
    path = tmp_path / "t.safetensors"
    save_safetensors(tensors, path, {"k": "v"})
    size = os.path.getsize(path)
    assert size > 4_000_000
    tracemalloc.start()
    try:
        got, meta = read_safetensors(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.05 * size, f"reading allocated {peak} bytes for a {size}-byte file: a copy of the data"
    assert meta == {"k": "v"} and set(got) == set(tensors)
    assert all(torch.equal(got[k], tensors[k]) and got[k].dtype == tensors[k].dtype for k in tensors)
    header = json.loads(path.read_bytes()[8:8 + int.from_bytes(path.read_bytes()[:8], "little")])
    starts = {t.data_ptr() - header[k]["data_offsets"][0] for k, t in got.items() if t.numel()}
    assert len(starts) == 1  # every tensor sits where the file has it, in one mapping of the file
    got["big"][0, 0] = 123.0  # copy-on-write: the file is never changed through a tensor
    assert read_safetensors(path)[0]["big"][0, 0] == tensors["big"][0, 0]
    torch.save(got, tmp_path / "t.pth")  # tensors of several dtypes in one file: still saved as usual
    assert torch.equal(torch.load(tmp_path / "t.pth", weights_only=True)["odd"], tensors["odd"])


def test_reader_copies_only_tensors_stored_off_alignment(tmp_path):
    """Other writers may place a float32 after an odd-length float16: that one tensor is copied."""
    half, single = torch.tensor([1.5], dtype=torch.float16), torch.tensor([2.5, -1.0])
    header = {"h": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]},
              "s": {"dtype": "F32", "shape": [2], "data_offsets": [2, 10]}}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path = tmp_path / "odd.safetensors"
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + half.numpy().tobytes() + single.numpy().tobytes())
    got, _ = read_safetensors(path)
    assert torch.equal(got["h"], half) and torch.equal(got["s"], single)


def test_files_cross_load_with_the_safetensors_library(tmp_path):
    tensors = _mixed_tensors()
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    save_safetensors(tensors, ours, {"a": "1"})
    st.save_file(tensors, str(theirs), metadata={"a": "1"})
    for read in (st.load_file(str(ours)), read_safetensors(theirs)[0]):
        assert set(read) == set(tensors) and all(torch.equal(read[k], tensors[k]) for k in tensors)
    assert read_safetensors(theirs)[1] == {"a": "1"}
    from safetensors import safe_open

    with safe_open(str(ours), framework="pt") as f:
        assert f.metadata() == {"a": "1"}
    # A model file assembled by the library loads as ours, metadata included.
    model = _tiny()
    info = model.info.replace(class_names=["a", "b", "c"])
    path = tmp_path / "lib_model.safetensors"
    st.save_file(model.state_dict(), str(path), metadata={"format": FORMAT, FORMAT: json.dumps(info.to_dict())})
    loaded = asymformer.load_model(path)
    assert loaded.info == info
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_overlapping_data_offsets_are_refused_not_loaded_as_wrong_weights(tmp_path):
    """A header that points one tensor at another's bytes (tampered or badly written) loaded with
    the wrong weights under the hand-written reader; the safetensors library refuses it."""
    model = _tiny()
    path = tmp_path / "m.safetensors"
    asymformer.save_model(model, path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    names = [k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32"]
    same = [(a, b) for a in names for b in names if a < b and header[a]["shape"] == header[b]["shape"]]
    a, b = same[0]
    header[b]["data_offsets"] = header[a]["data_offsets"]  # b now reads a's bytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (n - len(text)) if len(text) <= n else b""
    assert len(text) == n
    path.write_bytes(raw[:8] + text + raw[8 + n:])
    with pytest.raises(ValueError, match=r"m\.safetensors has a broken safetensors header \(invalid offset"):
        asymformer.load_model(path)
    with pytest.raises(ValueError, match="broken safetensors header"):
        read_safetensors(path)


def test_model_info_is_one_string_in_the_metadata(tmp_path):
    """The format allows string metadata only: ours is one JSON string the library reads back."""
    from safetensors import safe_open

    path = tmp_path / "m.safetensors"
    asymformer.save_model(_tiny(), path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == FORMAT and json.loads(meta[FORMAT])["name"] == "asymformer_b0_a"
    assert os.listdir(tmp_path) == ["m.safetensors"]  # the atomic write left no temporary file


def test_0_2_file_from_the_hand_written_writer_loads_with_the_library():
    """Files written before the safetensors library took over (tests/fixtures/models/README.md)."""
    path = FIXTURES / "tiny_0.2.safetensors"
    model = asymformer.load_model(path)
    info = model.info
    assert info.name == "asymformer_b0_a" and info.num_classes == 3 and info.class_names == ("wall", "floor", "chair")
    assert info.colors[2] == (70, 80, 90) and info.eval_size == (64, 96) and info.training["miou"] == 0.25
    g = torch.Generator().manual_seed(1)
    rgb, depth = torch.randn(1, 3, 32, 48, generator=g), torch.randn(1, 1, 32, 48, generator=g)
    with torch.no_grad():
        out = model(rgb, depth).numpy()
    np.testing.assert_allclose(out, np.load(FIXTURES / "tiny_0.2_logits_32x48_seed1.npy"), rtol=0, atol=1e-5)
