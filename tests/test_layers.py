"""The package's layers import one way: book -> evaluation -> training -> model, never back.

Every import in every module is read from its syntax tree (including imports inside functions),
resolved to the ihdm_core module it names, and ranked by layer. The entry points (``cli``,
``__main__``, ``__init__``) sit above all layers; a module's own ``if __name__ == "__main__":``
block may call the CLI wrapper, which is how ``python -m <module>`` reports errors."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ihdm_core"
LAYERS = ["model", "training", "evaluation", "book"]  # lowest first
ENTRY = len(LAYERS)


def _layer(module: str) -> int:
    parts = module.split(".")
    assert parts[0] == "ihdm_core", module
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else ENTRY


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_main_block(node) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _imports(path: Path):
    """(line, imported ihdm_core module) for every import outside a __main__ block."""
    tree = ast.parse(path.read_text())
    package = _name(path) if path.name == "__init__.py" else _name(path).rsplit(".", 1)[0]
    skip = {id(n) for top in tree.body if _is_main_block(top) for n in ast.walk(top)}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ihdm_core":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "ihdm_core":
                continue
            if node.module is None or len(target.split(".")) == 1:  # from . import x / from ihdm_core import x
                for alias in node.names:
                    yield node.lineno, f"{target}.{alias.name}"
            else:
                yield node.lineno, target


def test_the_layers_exist_and_hold_every_module():
    for layer in LAYERS:
        assert (PACKAGE / layer / "__init__.py").exists(), layer
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "cli.py"], loose


@pytest.mark.parametrize("path", [p for p in _modules() if _layer(_name(p)) < ENTRY],
                         ids=lambda p: _name(p))
def test_imports_point_down_the_layers(path):
    own = _layer(_name(path))
    upward = [f"line {line}: {target} ({LAYERS[_layer(target)] if _layer(target) < ENTRY else 'entry point'})"
              for line, target in _imports(path) if _layer(target) > own]
    assert not upward, f"{_name(path)} ({LAYERS[own]}) imports a higher layer: " + "; ".join(upward)


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The test itself: an evaluation import planted in a model module is reported."""
    fake = tmp_path / "ihdm_core" / "model"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("def f():\n    from ..evaluation.fid import frechet_distance\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "ihdm_core")
    found = list(_imports(fake / "bad.py"))
    assert found == [(2, "ihdm_core.evaluation.fid")] and _layer(found[0][1]) > _layer("ihdm_core.model.bad")
