"""No import cycle among the package's modules.

Every import of every module, including those inside functions (a deferred import still ties two
modules together), is read from its syntax tree, resolved to the ihdm_core module it names
(``from pkg import name`` names the module pkg.name when there is one, else pkg), and the strongly
connected components of that graph are found: any component of two or more modules, or a module
importing itself, is a cycle. A module's own ``if __name__ == "__main__":`` block is left out, as in
tests/test_layers.py: it runs only when the module is the script, never when another module imports
it."""

import ast
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("layers", ROOT / "test_layers.py")
layers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layers)


def _targets(path: Path):
    """Every ihdm_core module name an import in ``path`` may name, outside __main__ blocks."""
    tree = ast.parse(path.read_text())
    own = layers._name(path)
    package = own if path.name == "__init__.py" else own.rsplit(".", 1)[0]
    skip = {id(n) for top in tree.body if layers._is_main_block(top) for n in ast.walk(top)}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            yield from ([alias.name] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            yield from ([f"{base}.{alias.name}", base] for alias in node.names)


def import_graph(package: Path) -> dict[str, set[str]]:
    """module -> the package modules it imports. A name imported from a package that is not a
    module of it (``from ihdm_core import get_preset``) counts as importing the package."""
    paths = sorted(package.rglob("*.py"))
    names = {layers._name(p) for p in paths}
    graph = {}
    for path in paths:
        targets = set()
        for candidates in _targets(path):
            for target in candidates:
                while target not in names and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in names:
                    targets.add(target)
                    break
        graph[layers._name(path)] = targets - {layers._name(path)} if path.name == "__init__.py" \
            else targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components that are cycles (Tarjan's algorithm, iteratively)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(root):
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1 or node in graph.get(node, ()):
                    out.append(sorted(comp))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_the_package_has_no_import_cycle():
    found = cycles(import_graph(layers.PACKAGE))
    assert not found, f"{len(found)} import cycle(s): " + "; ".join(" <-> ".join(c) for c in found)


def test_the_check_finds_a_planted_cycle(tmp_path, monkeypatch):
    """Three modules: a imports b at the top, b imports c inside a function, c imports a; d only
    imports a. One cycle of three, and nothing else."""
    pkg = tmp_path / "ihdm_core"
    (pkg / "training").mkdir(parents=True)
    monkeypatch.setattr(layers, "PACKAGE", pkg)  # module names are relative to it
    for name in ("__init__.py", "training/__init__.py"):
        (pkg / name).write_text("")
    (pkg / "training" / "a.py").write_text("from .b import f\n")
    (pkg / "training" / "b.py").write_text("def f():\n    from ihdm_core.training import c\n")
    (pkg / "training" / "c.py").write_text("from . import a\n")
    (pkg / "training" / "d.py").write_text("from .a import f\n")
    graph = import_graph(pkg)
    assert graph["ihdm_core.training.b"] == {"ihdm_core.training.c"}
    assert cycles(graph) == [["ihdm_core.training.a", "ihdm_core.training.b",
                              "ihdm_core.training.c"]]
    (pkg / "training" / "c.py").write_text("x = 1\n")
    assert cycles(import_graph(pkg)) == []
