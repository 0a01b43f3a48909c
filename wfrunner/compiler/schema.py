"""Validate a definition against the workflow JSON Schema, in the user's terms.

jsonschema reports paths like ``nodes/3/type``; users think in node ids, so every
problem is re-addressed to ``node 'fetch'`` or ``edge a->b`` where the document allows.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

_SHOWN = 60  # characters of a user value quoted back in a message


@cache
def workflow_schema() -> dict[str, Any]:
    text = resources.files("wfrunner.compiler").joinpath("workflow.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Draft7Validator:
    return Draft7Validator(workflow_schema())


def node_types() -> tuple[str, ...]:
    return tuple(workflow_schema()["definitions"]["Node"]["properties"]["type"]["enum"])


def show(value: Any) -> str:
    """A user value, quoted and cut short so hostile input cannot flood a message."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _item(doc: Any, collection: str, index: int) -> Any:
    try:
        return doc[collection][index]
    except (KeyError, IndexError, TypeError):
        return None


def locate(doc: Any, path: list[Any]) -> str:
    """``node 'x'.config.url`` / ``edge a->b.condition`` / ``metadata.name``."""
    if len(path) >= 2 and path[0] in ("nodes", "edges") and isinstance(path[1], int):
        item = _item(doc, path[0], path[1])
        if path[0] == "nodes":
            node_id = item.get("id") if isinstance(item, dict) else None
            head = f"node {node_id!r}" if isinstance(node_id, str) else f"nodes[{path[1]}]"
        else:
            ends = (item.get("from"), item.get("to")) if isinstance(item, dict) else (None, None)
            ok = all(isinstance(e, str) for e in ends)
            head = f"edge {ends[0]}->{ends[1]}" if ok else f"edges[{path[1]}]"
        rest = path[2:]
    else:
        head, rest = "workflow", path
    return head + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest)


def _describe(error: ValidationError) -> str:
    kind, value = error.validator, error.instance
    if kind == "required":
        missing = [p for p in error.validator_value if p not in (value or {})]
        return f"missing required field {', '.join(repr(m) for m in missing)}"
    if kind == "type":
        return f"must be of type {error.validator_value}, not {show(value)}"
    if kind == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return f"is {show(value)}; expected one of: {allowed}"
    if kind == "pattern":
        return f"is {show(value)}; it may only contain letters, digits, '_' and '-'"
    if kind in ("minimum", "maximum"):
        word = "at least" if kind == "minimum" else "at most"
        return f"is {show(value)}; it must be {word} {error.validator_value}"
    if kind == "minItems":
        return f"needs at least {error.validator_value} item(s)"
    return str(error.message)[:200]


def schema_problems(doc: Any) -> list[str]:
    """Every schema violation, one line each, in document order."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    problems = []
    for error in errors:
        path = list(error.absolute_path)
        problems.append(f"{locate(doc, path)}: {_describe(error)}")
    return problems
