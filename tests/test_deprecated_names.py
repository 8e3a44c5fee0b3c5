"""0.1's Python names that moved in 0.2 keep working for one release, each with a DeprecationWarning
that names the new place; unknown names still fail by name."""

import numpy as np
import pytest
import torch

import asymformer
from asymformer import viz


def test_moved_drawing_names_warn_and_forward():
    import asymformer.data as data
    from asymformer.data import classes

    with pytest.warns(DeprecationWarning, match=r"asymformer.data.classes.make_palette is deprecated, use "
                                                r"asymformer.viz.palette \(it will be removed in 0.3\)"):
        make_palette = classes.make_palette
    assert make_palette is viz.palette and make_palette(5).tolist() == viz.palette(5).tolist()
    with pytest.warns(DeprecationWarning, match="asymformer.data.colorize is deprecated"):
        assert data.colorize is viz.colorize
    with pytest.raises(AttributeError, match="'nope'"):
        classes.nope  # noqa: B018


def test_resolve_device_is_bind_device():
    from asymformer.engine import distributed

    with pytest.warns(DeprecationWarning, match="use bind_device"):
        assert distributed.resolve_device("cpu") == torch.device("cpu")


def test_save_model_metadata_keyword_lands_in_info(tmp_path):
    model = asymformer.create_model("asymformer_b0_a", num_classes=3)
    colors = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    with pytest.warns(DeprecationWarning, match="keyword metadata is deprecated"):
        asymformer.save_model(model, tmp_path / "m.safetensors", metadata={"colors": colors, "eval_size": [64, 96],
                                                                           "epoch": 2})
    info = asymformer.load_model(tmp_path / "m.safetensors").info
    assert [list(c) for c in info.colors] == colors and list(info.eval_size) == [64, 96]
    assert info.training["epoch"] == 2
    with pytest.raises(TypeError, match="info must be a ModelInfo"):
        asymformer.save_model(model, tmp_path / "x.safetensors", None, None, {"colors": colors})
    assert not (tmp_path / "x.safetensors").exists()
    assert np.asarray(info.colors).shape == (3, 3)
