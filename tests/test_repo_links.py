"""Every relative link in the README and docs/ points at a file inside the repository."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_and_docs_links_stay_inside_the_repository():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(pages) >= 3  # README, docs/faithfulness.md, docs/blurring-diffusion.md
    checked = 0
    for page in pages:
        text = page.read_text()
        assert "../shared" not in text, page
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://|#|mailto:", target):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.is_relative_to(ROOT) and path.exists(), (page.name, target)
            checked += 1
    assert checked >= 4  # the docs pages, LICENSE and CITATION.cff from the README
    for name in ("LICENSE", "CITATION.cff"):
        assert (ROOT / name).exists()
    assert "Copyright (c) 2026 The IHDM reproduction authors" in (ROOT / "LICENSE").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'license = "MIT"' in pyproject and "MIT License" in (ROOT / "LICENSE").read_text()
