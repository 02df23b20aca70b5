"""The layout goals of the book and the package, measured by scripts/layout_report.py."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("layout_report", ROOT / "scripts" / "layout_report.py")
layout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layout)


# Chapters at the goal of <= 1.2 code lines per prose line, and the book as a whole. Chapters
# 3-5 are not there yet (1.48, 2.18, 2.03 when this was written); the book-wide bound holds the line
# until they are, and then becomes GOAL.
GOAL = 1.2
AT_GOAL = ["01_heat_equation", "02_power_spectra", "06_colour_disentanglement", "07_input_gradients",
           "08_prior_overlap", "09_three_processes", "10_reproduction_status"]
BOOK_BOUND = 1.4


def test_chapters_keep_their_code_to_prose_ratio():
    r = layout.report()
    over = {c: v["ratio"] for c, v in r["chapters"].items() if c in AT_GOAL and v["ratio"] > GOAL}
    assert not over, f"code/prose above {GOAL}: {over}"
    assert r["ratio"] <= BOOK_BOUND, f"code/prose over the book is {r['ratio']}: {r['chapters']}"


def test_no_package_function_is_longer_than_80_lines():
    longest = layout.functions(sorted((ROOT / "ihdm_core").rglob("*.py")))[0]
    assert longest[0] <= 80, f"{longest[1]} has {longest[0]} lines"


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
