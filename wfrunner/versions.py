"""Naming a workflow to run: its id, its name (the latest version), ``name@N``, or a name
with a version given apart. Registering a changed definition under a name makes its next
version, with an id of its own; a run keeps the id it started with, so a new version never
changes a run already going."""

from __future__ import annotations

from wfrunner.errors import WorkflowError


def split_reference(reference: str, version: int | None = None) -> tuple[str, int | None]:
    """(id or name, version or None) of ``reference``; ``name@N`` carries its version.

    Only a whole number after the last ``@`` is a version: any other ``@`` belongs to the
    name. A version given both ways must agree."""
    name, at, suffix = reference.rpartition("@")
    if at and name and suffix.isdigit():
        given = int(suffix)
        if version is not None and version != given:
            raise WorkflowError(
                f"workflow '{reference}' names version {given} but version {version} was "
                "given too: give one of them"
            )
        reference, version = name, given
    if version is not None and version < 1:
        raise WorkflowError(f"version {version}: versions are numbered from 1")
    return reference, version
