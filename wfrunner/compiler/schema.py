"""Validate a definition against the workflow JSON Schema, in the user's terms.

jsonschema reports paths like ``nodes/3/type``; users think in node ids, so every
problem is re-addressed to ``node 'fetch'`` or ``edge a->b`` where the document allows.
"""

from __future__ import annotations

import json
import re
import reprlib
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

from wfrunner.compiler.limits import edge_label, label

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
    if isinstance(value, str) and len(value) > _SHOWN:
        value = value[:_SHOWN]  # no need to encode a megabyte to show 60 characters of it
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = reprlib.repr(value)
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
            head = f"node {label(node_id)}" if isinstance(node_id, str) else f"nodes[{path[1]}]"
        else:
            ends = (item.get("from"), item.get("to")) if isinstance(item, dict) else (None, None)
            ok = all(isinstance(e, str) for e in ends)
            head = edge_label(str(ends[0]), str(ends[1])) if ok else f"edges[{path[1]}]"
        rest = path[2:]
    else:
        head, rest = "workflow", path
    return head + "".join(f"[{p}]" if isinstance(p, int) else f".{_key(p)}" for p in rest)


def _key(key: Any) -> str:
    text = str(key)
    return text if len(text) <= _SHOWN and text.isprintable() else show(text)


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
    if kind == "additionalProperties":
        known = ", ".join(repr(k) for k in error.schema.get("properties", {}))
        extra = sorted(set(value or {}) - set(error.schema.get("properties", {})))
        return f"has unknown field {', '.join(repr(e) for e in extra)}; expected: {known}"
    if kind == "minItems":
        return f"needs at least {error.validator_value} item(s)"
    return str(error.message)[:200]


_PLAIN_ID = re.compile(r"[a-zA-Z0-9_-]+")


def _plain_node(node: Any) -> bool:
    """True only for nodes the schema surely accepts, so they need not go through it."""
    if not isinstance(node, dict) or "retry" in node:
        return False
    node_id, config, timeout = node.get("id"), node.get("config", {}), node.get("timeout_ms", 0)
    return (
        isinstance(node_id, str)
        and _PLAIN_ID.fullmatch(node_id) is not None
        and node.get("type") in node_types()
        and isinstance(config, dict)
        and type(timeout) is int
        and timeout >= 0
    )


def _plain_edge(edge: Any) -> bool:
    return (
        isinstance(edge, dict)
        and isinstance(edge.get("from"), str)
        and isinstance(edge.get("to"), str)
        and isinstance(edge.get("condition", ""), str)
    )


def _slim(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """``doc`` without the nodes and edges that are surely valid (jsonschema takes about
    60 microseconds an item; this check 2), and where each remaining item came from."""
    slim, where = dict(doc), {}
    for key, plain in (("nodes", _plain_node), ("edges", _plain_edge)):
        items = doc.get(key)
        if isinstance(items, list):
            kept = [i for i, item in enumerate(items) if not plain(item)]
            if items and not kept:
                kept = [0]  # keep one so "minItems" still holds
            slim[key] = [items[i] for i in kept]
            where[key] = kept
    return slim, where


def schema_problems(doc: Any) -> list[str]:
    """Every schema violation, one line each, in document order."""
    checked, where = _slim(doc) if isinstance(doc, dict) else (doc, {})
    paths_errors = []
    for error in _validator().iter_errors(checked):
        path = list(error.absolute_path)
        if len(path) >= 2 and path[0] in where and isinstance(path[1], int):
            path[1] = where[str(path[0])][path[1]]
        paths_errors.append((path, error))
    paths_errors.sort(key=lambda item: [str(p) for p in item[0]])
    return [f"{locate(doc, path)}: {_describe(error)}" for path, error in paths_errors]
