"""0.1's Python names that moved in 0.2 keep working for one release, each with a DeprecationWarning
that names the new place; unknown names still fail by name."""

import importlib
import re
import sys
import warnings
from pathlib import Path

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


# --------------------------------------------------------------------------- moved modules (0.2)
# Written out by hand (not read from the stubs), so a stub that serves the wrong module fails here.
OLD_MODULES = {
    "asymformer.deploy.stream": "asymformer.stream.runner",
    "asymformer.deploy.stream_stages": "asymformer.stream.stages",
    "asymformer.deploy.points": "asymformer.outputs.points",
    "asymformer.deploy.rerun_view": "asymformer.outputs.rerun_view",
    "asymformer.deploy.cuda_backends": "asymformer.deploy.accel.cuda_backends",
    "asymformer.deploy.tensorrt": "asymformer.deploy.accel.tensorrt",
    "asymformer.deploy.openvino_backend": "asymformer.deploy.accel.openvino_backend",
    "asymformer.deploy.lowp": "asymformer.deploy.accel.lowp",
    "asymformer.deploy.quantize": "asymformer.deploy.accel.quantize",
    "asymformer.deploy.export": "asymformer.deploy.accel.export",
}
OLD_DEPLOY_NAMES = {"StreamRunner": "asymformer.stream", "StreamResult": "asymformer.stream",
                    "Intrinsics": "asymformer.outputs", "SemanticPoints": "asymformer.outputs",
                    "back_project": "asymformer.outputs", "write_ply": "asymformer.outputs"}


def _notices(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]


@pytest.fixture
def forget_old_modules(monkeypatch):
    """Each test imports the old paths afresh (the notice comes at the first import); the new modules stay."""
    import asymformer.deploy

    for old in OLD_MODULES:
        child = old.rsplit(".", 1)[1]
        if child in vars(asymformer.deploy):  # not hasattr: the package's __getattr__ would import the stub
            monkeypatch.delattr(asymformer.deploy, child)
        monkeypatch.delitem(sys.modules, old, raising=False)


@pytest.mark.usefixtures("forget_old_modules")
def test_every_old_module_path_is_the_moved_module_with_one_notice():
    for old, new in OLD_MODULES.items():
        moved = importlib.import_module(new)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            served = importlib.import_module(old)
            ns = {}
            exec(f"from {old} import *", ns)  # noqa: S102 - the star import a user's script may do
        assert _notices(caught) == [f"{old} is deprecated, use {new} (it will be removed in 0.3)"], old
        assert served is moved, old  # one module: every name is the same object
        assert {k: v for k, v in ns.items() if k != "__builtins__"} == {
            k: getattr(moved, k) for k in getattr(moved, "__all__", [k for k in vars(moved) if not k.startswith("_")])}


@pytest.mark.usefixtures("forget_old_modules")
def test_old_imports_in_a_users_script_warn_at_their_line_and_patch_the_new_module(monkeypatch):
    from asymformer.deploy.accel import lowp as new_lowp
    from asymformer.deploy.accel import quantize as new_quantize

    want = "asymformer.deploy.quantize is deprecated, use asymformer.deploy.accel.quantize (it will be removed in 0.3)"
    with pytest.warns(DeprecationWarning, match=re.escape(want)) as rec:
        from asymformer.deploy.quantize import quantize_onnx
    assert quantize_onnx is new_quantize.quantize_onnx and rec[0].filename == __file__
    with pytest.warns(DeprecationWarning, match="asymformer.deploy.lowp is deprecated"):
        from asymformer.deploy import lowp
    assert lowp is new_lowp
    import asymformer.deploy

    with pytest.warns(DeprecationWarning, match="asymformer.deploy.export is deprecated") as rec:
        export = asymformer.deploy.export  # `import asymformer.deploy` once loaded it
    assert export is importlib.import_module("asymformer.deploy.accel.export") and len(_notices(rec)) == 1
    # a test (or a user) that patches through the old path patches what the code runs
    monkeypatch.setattr("asymformer.deploy.lowp.CANDIDATES", {"int8": ("openvino-int8",)})
    assert new_lowp.CANDIDATES == {"int8": ("openvino-int8",)}


def test_names_moved_out_of_deploy_warn_and_forward():
    import asymformer.deploy as deploy

    for name, package in OLD_DEPLOY_NAMES.items():
        with pytest.warns(DeprecationWarning) as rec:
            obj = getattr(deploy, name)
        assert _notices(rec) == [f"asymformer.deploy.{name} is deprecated, use {package}.{name} "
                                 "(it will be removed in 0.3)"]
        assert obj is getattr(importlib.import_module(package), name) and name not in deploy.__all__


def test_no_code_or_doc_of_the_repo_uses_an_old_path():
    """The repo itself never meets these notices: no import, snippet or link names an old path."""
    repo = Path(__file__).resolve().parents[1]
    old = "|".join(m.rsplit(".", 1)[1] for m in OLD_MODULES)
    pattern = re.compile(rf"asymformer\.deploy\.({old}|{'|'.join(OLD_DEPLOY_NAMES)})\b|deploy/({old})\.py"
                         rf"|from asymformer\.deploy import [^\n]*\b({old}|{'|'.join(OLD_DEPLOY_NAMES)})\b")
    stubs = {repo / "src" / Path(*m.split(".")).with_suffix(".py") for m in OLD_MODULES}
    files = [f for top in ("src", "tests", "benchmarks", "examples", "docs") for f in (repo / top).rglob("*")
             if f.suffix in (".py", ".md") and f not in stubs and f != Path(__file__).resolve()]
    hits = [f"{f.relative_to(repo)}:{n}" for f in files + [repo / "README.md"]
            for n, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits
