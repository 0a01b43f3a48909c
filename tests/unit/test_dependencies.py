"""Every dependency names the majors it is tested with: an upper bound, which the versions
installed here (the ones the suite runs on) satisfy."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
REQUIREMENTS = [
    Requirement(r)
    for r in PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"]
    if Requirement(r).name != PROJECT["name"]  # wfrunner[embedded]: its own extra
]


@pytest.mark.parametrize("requirement", REQUIREMENTS, ids=lambda r: r.name)
def test_bounded_and_installed_within_the_bounds(requirement: Requirement) -> None:
    assert any(spec.operator in ("<", "<=", "~=", "==") for spec in requirement.specifier), (
        f"{requirement} has no upper bound"
    )
    installed = metadata.version(requirement.name)
    assert requirement.specifier.contains(installed, prereleases=True), (requirement, installed)
