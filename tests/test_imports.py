"""The package's import graph: no cycles (function-level imports included) and one direction,
layer by layer (LAYERS): cli -> robot -> stream -> deploy / engine -> outputs -> models -> data -> the leaves."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "asymformer"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the asymformer modules it imports anywhere in its body."""
    files = {_module_name(f): f for f in PKG.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[:len(pkg.split(".")) - (node.level - 1)] if node.level else []
                mod = ".".join(base + ([node.module] if node.module else []))
                targets = ([mod] if node.module else []) + [f"{mod}.{a.name}" for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in files and t != name}
        graph[name] = deps
    return graph


def find_cycle(graph) -> list[str] | None:
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep, stack + [dep])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    graph = import_graph()
    assert "asymformer.deploy.backends" in graph and "asymformer.deploy.common" in graph["asymformer.deploy.backends"]
    assert find_cycle(graph) is None


# The packages from the ground up. An import goes down to a lower layer or stays inside its own
# package; none runs up, and none runs sideways (no two packages of one layer import each other).
LAYERS = (
    ("asymformer", "asymformer.deprecation", "asymformer.devices", "asymformer.files", "asymformer.progress",
     "asymformer.viz"),  # the leaves: they import nothing of asymformer
    ("asymformer.data", "asymformer.figures", "asymformer.report"),
    ("asymformer.models",),
    ("asymformer.outputs",),  # what results become (points, PLY, the Rerun view): needs no model
    ("asymformer.engine", "asymformer.deploy"),
    ("asymformer.stream",),  # the streaming runtime: runs any Segmenter, fed by the robot tools
    ("asymformer.robot", "asymformer.demo"),
    ("asymformer.cli",),
    ("asymformer.__main__",),
)
LEAVES = LAYERS[0]


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def layer_violations(graph) -> list[tuple[str, str]]:
    """(module, import) pairs that run up or sideways between packages."""
    layer = {pkg: i for i, pkgs in enumerate(LAYERS) for pkg in pkgs}
    return sorted((m, d) for m, deps in graph.items() for d in deps
                  if _package(m) != _package(d) and layer[_package(d)] >= layer[_package(m)])


def test_finds_a_planted_upward_import():
    graph = {"asymformer.outputs.points": {"asymformer.deploy.segmenter", "asymformer.viz"},
             "asymformer.deploy.segmenter": {"asymformer.outputs.points"}, "asymformer.viz": set()}
    assert layer_violations(graph) == [("asymformer.outputs.points", "asymformer.deploy.segmenter")]


def test_imports_flow_one_way():
    graph = import_graph()
    assert {_package(m) for m in graph} == {pkg for pkgs in LAYERS for pkg in pkgs}  # a new package is placed
    assert not layer_violations(graph)
    # outputs/ works on label maps, depth and intrinsics: nothing of data, models or deploy
    assert {_package(d) for m, deps in graph.items() if m.startswith("asymformer.outputs.") for d in deps} <= {
        "asymformer.outputs", *LEAVES}
    assert "asymformer.outputs.points" in graph["asymformer.robot.messages"]  # the check sees the package
    assert "asymformer.stream" in graph["asymformer.robot.realtime"]


def test_torch_floor_is_the_one_in_pyproject():
    import tomllib

    import asymformer

    deps = tomllib.loads((PKG.parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_req = [d for d in deps if d.replace(" ", "").startswith("torch>=")]
    assert torch_req == [f"torch>={'.'.join(map(str, asymformer.TORCH_MIN))}"]


def test_older_torch_is_refused_at_import_with_the_fix(monkeypatch):
    import importlib
    import sys

    import pytest
    import torch

    import asymformer

    need = ".".join(map(str, asymformer.TORCH_MIN))
    older = f"{asymformer.TORCH_MIN[0]}.{asymformer.TORCH_MIN[1] - 1}.1+cpu"
    try:
        monkeypatch.setattr(torch, "__version__", older)
        with pytest.raises(ImportError) as err:
            importlib.reload(asymformer)
        assert str(err.value) == f"asymformer needs torch>={need} (found {older}); pip install 'torch>={need}'"
        monkeypatch.setattr(torch, "__version__", f"{need}.0a0+git1234")  # the floor's own pre-releases pass
        importlib.reload(asymformer)
        # not imported yet: read from torch/version.py (importing torch would slow `import asymformer`)
        monkeypatch.delitem(sys.modules, "torch")
        assert asymformer._torch_version() == torch.version.__version__
    finally:
        monkeypatch.undo()
        importlib.reload(asymformer)


# --------------------------------------------------------------------------- public names
# Written out by hand (not read from asymformer._EXPORTS), so a wrong mapping there fails here.
TOP_LEVEL = {
    "create_model": "asymformer.models.asymformer", "list_models": "asymformer.models.asymformer",
    "AsymFormer": "asymformer.models.asymformer", "load_official_state_dict": "asymformer.models.weights",
    "load_model": "asymformer.models.serialization", "save_model": "asymformer.models.serialization",
    "Segmenter": "asymformer.deploy.segmenter",
}
SUBPACKAGES = ("asymformer.models", "asymformer.data", "asymformer.engine", "asymformer.deploy", "asymformer.outputs",
               "asymformer.stream", "asymformer.robot")
OPTIONAL = ("onnx", "onnxruntime", "openvino", "tensorrt", "pyrealsense2", "cv2")


def _run_python(code: str) -> dict:
    """Run `code` in a fresh interpreter (sys.modules untouched by the test session); it prints JSON."""
    import json
    import subprocess
    import sys

    env = {"PYTHONPATH": str(PKG.parent), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_package_exports_resolve_lazily():
    """`import asymformer` loads nothing else; each export loads only its own subpackage (never the
    optional runtimes), and `from asymformer import *` gives the objects named in TOP_LEVEL."""
    code = f"""
import json, sys
def loaded():
    return sorted(m for m in sys.modules if m.split(".")[0] in {OPTIONAL + ("torch",)!r}
                  and "." not in m or m.startswith("asymformer."))
out = {{}}
import asymformer
out["bare"] = loaded()
asymformer.create_model
out["create_model"] = loaded()
asymformer.Segmenter
out["segmenter"] = loaded()
ns = {{}}
exec("from asymformer import *", ns)
out["star"] = {{k: getattr(ns[k], "__module__", None) for k in asymformer.__all__ if k != "__version__"}}
out["same"] = [asymformer.create_model is sys.modules["asymformer.models"].create_model,
               asymformer.Segmenter is sys.modules["asymformer.deploy"].Segmenter]
print(json.dumps(out))
"""
    out = _run_python(code)
    assert out["bare"] == []  # not even torch: the CLI's --help and --version stay fast
    assert "torch" in out["create_model"] and "asymformer.models" in out["create_model"]
    assert not [m for m in out["create_model"] if m.startswith(("asymformer.deploy", "asymformer.engine",
                                                                 "asymformer.data"))]
    assert "asymformer.deploy.segmenter" in out["segmenter"]
    # deploy loads neither the engine nor the streaming runtime above it, nor an optional runtime
    assert not [m for m in out["segmenter"] if m.startswith(("asymformer.engine", "asymformer.stream"))
                or m in OPTIONAL]
    assert out["star"] == TOP_LEVEL and out["same"] == [True, True]


def test_every_public_name_resolves_and_unknown_names_fail_by_name():
    import importlib

    import pytest

    import asymformer

    assert set(asymformer.__all__) == {"__version__", *TOP_LEVEL}
    for name, module in TOP_LEVEL.items():
        assert getattr(asymformer, name) is getattr(importlib.import_module(module), name), name
    for pkg_name in SUBPACKAGES:
        pkg = importlib.import_module(pkg_name)
        assert len(pkg.__all__) == len(set(pkg.__all__)), pkg_name
        for name in pkg.__all__:
            obj = getattr(pkg, name)  # every listed name exists
            if callable(obj):  # functions and classes come from the subpackage itself
                assert obj.__module__.startswith(pkg_name + "."), (pkg_name, name, obj.__module__)
    engine = importlib.import_module("asymformer.engine")
    from asymformer.engine.evaluate import evaluate_checkpoint
    from asymformer.engine.train import train
    # the functions, not the same-named submodules (importing those must not rebind the names)
    assert engine.train is train and engine.evaluate is evaluate_checkpoint
    with pytest.raises(AttributeError, match="module 'asymformer' has no attribute 'segmenter'"):
        asymformer.segmenter  # noqa: B018 - lower case: not an export
    assert not hasattr(asymformer, "create_models")
    for pkg_name in SUBPACKAGES:
        with pytest.raises(AttributeError, match="'nope'"):
            importlib.import_module(pkg_name).nope  # noqa: B018


def test_one_drawing_module():
    """Issue 13: palettes, label colours, overlays, panels and charts live in asymformer.viz only."""
    graph = import_graph()
    assert "asymformer.deploy.render" not in graph
    users = {m for m, deps in graph.items() if "asymformer.viz" in deps}
    assert {"asymformer.deploy.predict", "asymformer.engine.evaluate", "asymformer.engine.logging",
            "asymformer.demo", "asymformer.data.classes"} <= users
    drawing = ("ImageDraw", "def colorize", "def overlay", "def colormap", "def legend", "def make_palette")
    elsewhere = sorted(str(f.relative_to(PKG)) for f in PKG.rglob("*.py") if f.name != "viz.py"
                       and any(word in f.read_text() for word in drawing))
    assert not elsewhere
