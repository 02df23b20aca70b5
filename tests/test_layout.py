"""The layout goals of the book and the package, measured by scripts/layout_report.py."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("layout_report", ROOT / "scripts" / "layout_report.py")
layout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layout)


GOAL = 1.2  # code lines per prose line, issue 15


def test_every_chapter_and_the_book_have_at_most_1_2_code_lines_per_prose_line():
    r = layout.report()
    over = {c: v["ratio"] for c, v in r["chapters"].items() if v["ratio"] > GOAL}
    assert not over, f"code/prose above {GOAL}: {over}"
    assert r["ratio"] <= GOAL, f"code/prose over the book is {r['ratio']}"


def test_no_package_function_is_longer_than_60_lines():  # issue 22
    longest = layout.functions(sorted((ROOT / "ihdm_core").rglob("*.py")))[0]
    assert longest[0] <= 60, f"{longest[1]} has {longest[0]} lines"


def test_no_package_module_is_longer_than_450_lines():  # issue 22: one job per module
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
             for p in (ROOT / "ihdm_core").rglob("*.py")}
    over = {name: n for name, n in sizes.items() if n > 450}
    assert not over, f"modules over 450 lines: {over}"
    assert max(sizes.values()) > 300  # the count reads real files


def test_chapters_do_not_define_what_another_chapter_or_the_package_defines():
    package = {name.rsplit(":", 1)[1] for _, name in layout.functions(sorted((ROOT / "ihdm_core").rglob("*.py")))}
    seen = {}
    for chapter, names in layout.chapter_functions().items():
        for name in names:
            assert name not in package, f"{chapter} defines {name}, which the package also defines"
            assert name not in seen, f"{name} is defined in {seen.get(name)} and {chapter}"
            seen[name] = chapter


def test_the_counting_rules():
    """The counter itself, on a written-out chapter: 2 code lines (a comment-only line is not code),
    3 prose lines (blank lines and a bare heading marker are not prose)."""
    text = ("# ---\n# jupytext header\n# ---\n\n# %% [markdown]\n# # Title\n#\n# One line.\n# Two.\n\n"
            "# %%\nx = 1\n# a comment\n\ny = x + 1\n")
    path = ROOT / "tests" / "_layout_probe.py"
    try:
        path.write_text(text)
        assert layout.code_prose(path) == (2, 3)
    finally:
        path.unlink()


def test_duplicate_finder_finds_a_planted_copy(tmp_path, monkeypatch):
    block = "".join(f"value_{i} = compute({i}, weight={i * 2})\n" for i in range(7))
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f():\n" + "".join("    " + l for l in block.splitlines(True)))
    b.write_text("x = 0\n" + block + "y = 1\n")
    monkeypatch.setattr(layout, "ROOT", tmp_path)
    found = layout.duplicated_blocks([a, b])
    assert len(found) == 1 and found[0]["lines"] == 7 and sorted(found[0]["places"]) == ["a.py:2", "b.py:2"]
