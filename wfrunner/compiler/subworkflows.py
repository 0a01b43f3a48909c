"""Compile-time checks of a ``subworkflow`` node's config (docs/subworkflows.md).

What the definition alone can tell: ``config.workflow`` names a workflow (its name or
id) and ``config.version`` is a version number. Whether that workflow exists, and whether
it would include the workflow being registered, is checked at registration
(:mod:`wfrunner.subflows`), where the registered workflows are known.
"""

from __future__ import annotations

from typing import Any

from wfrunner.compiler.schema import show


def subworkflow_problems(where: str, config: dict[str, Any]) -> list[str]:
    problems = []
    name = config.get("workflow")
    if not isinstance(name, str) or not name.strip():
        problems.append(
            f"{where}: a subworkflow node needs config.workflow (the name or id of a "
            f"registered workflow to run as a child run), not {show(name)}"
        )
    version = config.get("version")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        problems.append(
            f"{where}: config.version must be a workflow version number (1 or more), "
            f"not {show(version)}"
        )
    if "function_name" in config:
        problems.append(
            f"{where}: a subworkflow node runs its child workflow, not a handler: remove "
            "config.function_name"
        )
    return problems


def child_reference(config: dict[str, Any]) -> tuple[str, int | None]:
    """(workflow name or id, version or None) of a compiled subworkflow node."""
    version = config.get("version")
    return str(config["workflow"]), version if isinstance(version, int) else None
