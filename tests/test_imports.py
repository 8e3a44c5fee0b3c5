"""The package's import graph: no cycles (function-level imports included) and one direction,
cli -> engine / deploy -> data / models (-> the leaves devices, files, viz)."""

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
    upper = ("asymformer.engine", "asymformer.deploy", "asymformer.cli", "asymformer.demo", "asymformer.report")
    wrong = sorted((m, d) for m, deps in graph.items() for d in deps if m.startswith(lower) and d.startswith(upper))
    wrong += sorted((m, d) for m, deps in graph.items() for d in deps
                    if m.startswith(("asymformer.engine", "asymformer.deploy")) and d.startswith("asymformer.cli"))
    wrong += sorted((leaf, d) for leaf in ("asymformer.devices", "asymformer.viz") for d in graph[leaf])
    assert not wrong


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
