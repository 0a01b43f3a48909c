"""Read workflow definitions from files: one workflow, or an object of named workflows.

``workflow_examples.json`` style collections (``{"name": {nodes, edges}, ...}``) are accepted
so a team's existing example files validate as they are.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wfrunner.compiler.limits import MAX_DEFINITION_BYTES, MAX_WORKFLOWS_PER_FILE, label
from wfrunner.errors import WorkflowError

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class NamedDefinition:
    name: str
    source: str  # "file.json" or "file.json:name" for messages
    definition: Any


def parse_json(text: str | bytes, source: str) -> Any:
    """JSON text -> value, with a :class:`WorkflowError` naming the line and column."""
    if len(text) > MAX_DEFINITION_BYTES:
        unit = "bytes" if isinstance(text, bytes) else "characters"
        raise WorkflowError(
            f"{source}: {len(text):,} {unit} is more than the {MAX_DEFINITION_BYTES:,} byte limit"
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WorkflowError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise WorkflowError(
            f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise WorkflowError(f"{source}: JSON nested too deeply") from None
    except ValueError as exc:  # NaN, or an integer of more than 4,300 digits
        raise WorkflowError(f"{source}: not valid JSON: {str(exc)[:120]}") from None
    if _SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(value, source)
    return value


def _refuse_constant(name: str) -> Any:
    """Python's json reads NaN and Infinity; JSON has no such numbers, nor does PostgreSQL."""
    raise ValueError(f"{name} is not a JSON number")


def _refuse_lone_surrogates(value: Any, source: str) -> None:
    """JSON may spell a lone UTF-16 surrogate (``"\\ud800"``); no UTF-8 text can hold one."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise WorkflowError(
            f"{source}: not valid Unicode: a string holds a lone surrogate "
            f"{exc.object[exc.start : exc.start + 1]!r}"
        ) from None
    except RecursionError:
        raise WorkflowError(f"{source}: JSON nested too deeply") from None


def _is_workflow(value: Any) -> bool:
    return isinstance(value, dict) and "nodes" in value


def split_definitions(value: Any, source: str, default_name: str) -> list[NamedDefinition]:
    """One workflow, or each workflow of a named collection."""
    if _is_workflow(value):
        meta = value.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        return [NamedDefinition(name if isinstance(name, str) else default_name, source, value)]
    if isinstance(value, dict) and "$schema" in value and "definitions" in value:
        raise WorkflowError(f"{source}: this is a JSON Schema, not a workflow definition")
    if isinstance(value, dict) and value and all(_is_workflow(v) for v in value.values()):
        if len(value) > MAX_WORKFLOWS_PER_FILE:
            raise WorkflowError(
                f"{source}: {len(value):,} workflows in one file; the limit is "
                f"{MAX_WORKFLOWS_PER_FILE:,}"
            )
        return [_named(str(k), source, v) for k, v in value.items()]
    raise WorkflowError(
        f"{source}: not a workflow: expected an object with 'nodes' and 'edges', "
        "or an object whose values are such workflows"
    )


def _named(name: str, source: str, definition: Any) -> NamedDefinition:
    shown = name if len(name) <= 80 and name.isprintable() else label(name[:80])
    return NamedDefinition(name, f"{source}:{shown}", definition)


def pick_definition(
    definitions: list[NamedDefinition], source: str, name: str | None, chooser: str = "--name"
) -> NamedDefinition:
    """The workflow called ``name`` in a file, or the file's only workflow; ``chooser`` is
    how the caller's user names one (the CLI's option, the API's query parameter)."""
    names = ", ".join(d.name for d in definitions)
    if name is not None:
        for item in definitions:
            if item.name == name:
                return item
        raise WorkflowError(f"{source}: no workflow named {name!r} (it has: {names})")
    if len(definitions) > 1:
        raise WorkflowError(
            f"{source} holds several workflows ({names}): choose one with {chooser}"
        )
    return definitions[0]


def load_definitions(path: str | Path) -> list[NamedDefinition]:
    """Every workflow in the file at ``path``."""
    path = Path(path)
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_DEFINITION_BYTES:
            raise WorkflowError(
                f"{source}: {size:,} bytes is larger than the {MAX_DEFINITION_BYTES:,} byte limit"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise WorkflowError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise WorkflowError(f"{source}: is a directory, not a workflow file") from None
    except OSError as exc:
        raise WorkflowError(f"{source}: cannot be read ({exc.strerror})") from None
    return split_definitions(parse_json(data, source), source, path.stem)
