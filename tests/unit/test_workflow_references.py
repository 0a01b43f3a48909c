"""How a workflow is named to run: id or name, ``name@N``, or a name and a version."""

from __future__ import annotations

import pytest

from wfrunner.errors import WorkflowError
from wfrunner.versions import split_reference


@pytest.mark.parametrize(
    ("reference", "version", "expected"),
    [
        ("1fab5fca7ff9423f839a26cceda26434", None, ("1fab5fca7ff9423f839a26cceda26434", None)),
        ("order", None, ("order", None)),
        ("order@3", None, ("order", 3)),
        ("order", 2, ("order", 2)),
        ("order@2", 2, ("order", 2)),
        ("team@example.org", None, ("team@example.org", None)),  # '@' of the name
        ("team@example@4", None, ("team@example", 4)),
        ("@4", None, ("@4", None)),  # no name before the '@'
    ],
)
def test_references(reference: str, version: int | None, expected: tuple[str, int | None]) -> None:
    assert split_reference(reference, version) == expected


def test_a_version_given_twice_must_agree_and_versions_start_at_1() -> None:
    with pytest.raises(WorkflowError, match="names version 2 but version 3 was given too"):
        split_reference("order@2", 3)
    with pytest.raises(WorkflowError, match="version 0: versions are numbered from 1"):
        split_reference("order@0")
    with pytest.raises(WorkflowError, match="version -1"):
        split_reference("order", -1)
