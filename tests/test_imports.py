"""The package's import graph: no cycles (function-level imports included) and one direction,
cli -> engine / deploy -> data / models (-> devices)."""

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


def test_imports_flow_one_way():
    graph = import_graph()
    lower = ("asymformer.models", "asymformer.data")
    upper = ("asymformer.engine", "asymformer.deploy", "asymformer.cli", "asymformer.demo")
    wrong = sorted((m, d) for m, deps in graph.items() for d in deps
                   if m.startswith(lower) and d.startswith(upper + ("asymformer.report", "asymformer.viz")))
    wrong += sorted((m, d) for m, deps in graph.items() for d in deps
                    if m.startswith(("asymformer.engine", "asymformer.deploy")) and d.startswith("asymformer.cli"))
    wrong += sorted(("asymformer.devices", d) for d in graph["asymformer.devices"])
    assert not wrong


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
