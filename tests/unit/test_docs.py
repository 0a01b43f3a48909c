"""The README and docs/ stand alone: every relative link leads to a file of the repository,
no page points at documents a user of the repository does not have, and the DSL reference
lists every example workflow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_lead_to_files(page: Path) -> None:
    text = page.read_text()
    targets = [t.split("#", 1)[0] for t in LINK.findall(text) if "://" not in t]
    missing = [t for t in targets if t and not (page.parent / t).exists()]
    assert not missing, missing
    assert "CONTRACT" not in text


def test_the_dsl_reference_lists_every_example() -> None:
    text = (ROOT / "docs" / "dsl.md").read_text()
    for example in sorted((ROOT / "examples").glob("*.json")):
        assert f"(../examples/{example.name})" in text, example.name
