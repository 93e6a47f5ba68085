"""Every relative link in README.md and docs/*.md points at a file that exists, and every #anchor at a heading.

Why: the docs are split into a reference (docs/recipe.md), a dated log (docs/recipe_log.md) and a results
record (docs/results.md) that link into each other; moving a section must not leave a reader at a dead link.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]*)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (not '-' or '_'), spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors a page's headings get; a repeated heading gets '-1', '-2', ... as on GitHub."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in page.read_text().splitlines():
        m = re.match(r"#{1,6} (.*)", line)
        if m:
            s = slug(m.group(1))
            found.add(s if s not in seen else f"{s}-{seen[s]}")
            seen[s] = seen.get(s, 0) + 1
    return found


def broken_links(page: Path) -> list[str]:
    out = []
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            out.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            out.append(f"{target}: no heading with that anchor")
    return out


def test_slug_follows_github():
    assert slug("Limits / not done") == "limits--not-done"
    assert slug("Default augmentation policy: `auto_default` (2026-12-04)") == \
        "default-augmentation-policy-auto_default-2026-12-04"


def test_the_checker_sees_a_dead_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Top\n[ok](#top) [gone](missing.md) [bad anchor](#nowhere)\n")
    assert broken_links(page) == ["missing.md: no such file", "#nowhere: no heading with that anchor"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    assert broken_links(page) == []
