"""How the code is laid out, in numbers: the book's code-to-prose ratio, the longest functions,
and blocks of six or more lines that appear twice.

    python scripts/layout_report.py            # a table per measure
    python scripts/layout_report.py --json     # the same as JSON (tests/test_layout.py reads it)

Counting rules. A chapter is a jupytext py:percent file: a code line is a non-blank line of a code
cell that is not only a comment; a prose line is a non-blank line of a markdown cell. Function
length is the number of source lines of a ``def`` (decorators and docstring included), nested
functions counted on their own. A duplicated block is a run of at least six consecutive non-blank,
non-comment lines, compared after stripping indentation, that occurs at two or more places in
``ihdm_core/`` and ``book/`` (import lines and lines of brackets alone are not counted).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CELL = re.compile(r"^# %%(.*)$")
MIN_BLOCK = 6


def chapter_cells(path: Path) -> list[tuple[str, list[str]]]:
    """(kind, lines) per cell, kind 'markdown' or 'code'; the jupytext header is skipped."""
    cells, kind, lines = [], None, []
    for line in path.read_text().splitlines():
        m = CELL.match(line)
        if m:
            if kind is not None:
                cells.append((kind, lines))
            kind, lines = ("markdown" if "[markdown]" in m.group(1) else "code"), []
        elif kind is not None:
            lines.append(line)
    if kind is not None:
        cells.append((kind, lines))
    return cells


def code_prose(path: Path) -> tuple[int, int]:
    code = prose = 0
    for kind, lines in chapter_cells(path):
        for line in lines:
            text = line.strip()
            if kind == "markdown":
                prose += bool(text.lstrip("#").strip())
            elif text and not text.startswith("#"):
                code += 1
    return code, prose


def chapters() -> list[Path]:
    return sorted((ROOT / "book").glob("[0-9][0-9]_*.py"))


def functions(paths) -> list[tuple[int, str]]:
    out = []
    for path in paths:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                out.append((node.end_lineno - start + 1, f"{path.relative_to(ROOT)}:{node.name}"))
    return sorted(out, reverse=True)


def chapter_functions() -> dict[str, list[str]]:
    """Functions defined at any depth in each chapter."""
    out = {}
    for path in chapters():
        tree = ast.parse(path.read_text())
        out[path.stem] = sorted(n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return out


def _norm(line: str) -> str | None:
    text = line.strip()
    if not text or text.startswith("#") or text.startswith(("import ", "from ")):
        return None
    if not re.search(r"[A-Za-z0-9]", text):
        return None
    return text


def duplicated_blocks(paths) -> list[dict]:
    """Maximal runs of >= MIN_BLOCK normalised lines that occur at two or more places."""
    seqs = {}
    for path in paths:
        lines = [(i + 1, _norm(l)) for i, l in enumerate(path.read_text().splitlines())]
        seqs[str(path.relative_to(ROOT))] = [(n, t) for n, t in lines if t is not None]
    where = defaultdict(list)
    for name, seq in seqs.items():
        for i in range(len(seq) - MIN_BLOCK + 1):
            key = tuple(t for _, t in seq[i:i + MIN_BLOCK])
            where[key].append((name, i))
    # Join overlapping windows into maximal blocks, one per first place.
    seen, blocks = set(), []
    for key, places in where.items():
        if len(places) < 2 or places[0] in seen:
            continue
        length = MIN_BLOCK
        while True:
            ext = [(n, i) for n, i in places if i + length < len(seqs[n])]
            if len(ext) != len(places) or len({seqs[n][i + length][1] for n, i in places}) != 1:
                break
            length += 1
        for n, i in places:
            for j in range(length - MIN_BLOCK + 1):
                seen.add((n, i + j))
        blocks.append({"lines": length, "places": [f"{n}:{seqs[n][i][0]}" for n, i in places]})
    return sorted(blocks, key=lambda b: -b["lines"])


def report() -> dict:
    per_chapter = {p.stem: code_prose(p) for p in chapters()}
    code = sum(c for c, _ in per_chapter.values())
    prose = sum(p for _, p in per_chapter.values())
    package = sorted((ROOT / "ihdm_core").rglob("*.py"))
    return {
        "chapters": {k: {"code": c, "prose": p, "ratio": round(c / max(p, 1), 2)} for k, (c, p) in per_chapter.items()},
        "code_lines": code, "prose_lines": prose, "ratio": round(code / max(prose, 1), 2),
        "longest_functions": [{"lines": n, "function": f} for n, f in functions(package)[:10]],
        "chapter_functions": chapter_functions(),
        "duplicated_blocks": duplicated_blocks(package + chapters()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    r = report()
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    print("| chapter | code lines | prose lines | code/prose |\n|---|---:|---:|---:|")
    for k, v in r["chapters"].items():
        print(f"| {k} | {v['code']} | {v['prose']} | {v['ratio']} |")
    print(f"| **book** | {r['code_lines']} | {r['prose_lines']} | **{r['ratio']}** |\n")
    print("| longest functions (package) | lines |\n|---|---:|")
    for f in r["longest_functions"]:
        print(f"| {f['function']} | {f['lines']} |")
    n_fn = sum(len(v) for v in r["chapter_functions"].values())
    print(f"\nfunctions defined in chapters: {n_fn}")
    print(f"\nduplicated blocks (>= {MIN_BLOCK} lines): {len(r['duplicated_blocks'])}")
    for b in r["duplicated_blocks"]:
        print(f"  {b['lines']} lines at {', '.join(b['places'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
