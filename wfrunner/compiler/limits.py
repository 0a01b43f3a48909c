"""Size limits on workflow definitions, so a hostile document fails fast and clearly.

Every limit is generous for a real workflow and small enough that the compiler stays fast
(linear in the size of the document) and its messages stay readable:

``MAX_DEFINITION_BYTES`` = 16 MiB
    the largest definition file :func:`wfrunner.compiler.source.load_definitions` reads.
``MAX_WORKFLOWS_PER_FILE`` = 1,000
    workflows in one named collection file.
``MAX_NODES`` = 20,000 and ``MAX_EDGES`` = 100,000
    per workflow; a 10,000-node workflow compiles in well under a second.
``MAX_FAN_OUT`` = ``MAX_FAN_IN`` = 5,000
    outgoing / incoming edges of one node (a 1,000-way fan-out and its join compile).
``MAX_LOOPS`` = 1,000
    loop nodes per workflow (each loop's target is checked for being upstream).
``MAX_ID_LENGTH`` = 128
    characters of a node id (the schema already restricts them to ``[A-Za-z0-9_-]``).
``MAX_EXPRESSIONS`` = 5,000 and ``MAX_EXPRESSION_TEXT`` = 128 KiB
    distinct CEL expressions (edge conditions, ``config.expression``,
    ``config.filter_expression``, loop ``config.condition``) and their total length:
    parsing CEL costs about 10 microseconds a character, so this bounds compile time.
    (One expression may be up to 4,096 characters: ``wfrunner.conditions``.)
``MAX_DEPTH`` = 64
    levels of JSON objects and arrays, counted from the definition's root, so a node's
    ``config`` may nest about 60 levels.
``MAX_PROBLEMS`` = 100
    problems listed in one :class:`~wfrunner.errors.CompileError`; the rest are counted
    in a last line ("... and 9,900 more problems").
``MAX_PROBLEM_LENGTH`` = 400
    characters of one problem line; user values quoted in it are cut shorter still.

Counts and depth are checked before anything else (JSON Schema included): a definition
over them is rejected with those problems alone.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, TypeAlias

MAX_DEFINITION_BYTES = 16 * 1024 * 1024
MAX_WORKFLOWS_PER_FILE = 1_000
MAX_NODES = 20_000
MAX_EDGES = 100_000
MAX_FAN_OUT = 5_000
MAX_FAN_IN = 5_000
MAX_LOOPS = 1_000
MAX_ID_LENGTH = 128
MAX_EXPRESSIONS = 5_000
MAX_EXPRESSION_TEXT = 128 * 1024
MAX_DEPTH = 64
MAX_PROBLEMS = 100
MAX_PROBLEM_LENGTH = 400

_LABEL = 40  # characters of a long id quoted in a message
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]+")
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}
_Crumb: TypeAlias = tuple[str | int, Any] | None  # (key, parent crumb): a path, linked


def label(node_id: str) -> str:
    """An id for a message: quoted, and cut short when it is too long to read."""
    if len(node_id) <= _LABEL:
        return repr(node_id)
    return repr(node_id[:_LABEL] + "...")


def edge_label(source: str, target: str) -> str:
    """``edge a->b``, each end cut short like :func:`label`."""

    def end(node_id: str) -> str:
        if _PLAIN_ID.fullmatch(node_id) is None:
            return label(node_id)
        return node_id if len(node_id) <= _LABEL else node_id[:_LABEL] + "..."

    return f"edge {end(source)}->{end(target)}"


def too_deep(value: Any, limit: int) -> list[str | int] | None:
    """The path to the first object or array nested below ``limit`` levels, else ``None``.

    Iterative, so a document nested 100,000 levels deep needs no deep stack; paths are
    kept as parent links and only spelled out for the one that is reported.
    """
    stack: list[tuple[Any, int, _Crumb]] = [(value, 0, None)]
    while stack:
        item, depth, crumb = stack.pop()
        if isinstance(item, dict):
            children: Any = item.items()
        elif isinstance(item, list):
            children = enumerate(item)
        else:
            continue
        if depth >= limit:
            path: list[str | int] = []
            while crumb is not None:
                path.append(crumb[0])
                crumb = crumb[1]
            return path[::-1]
        stack.extend(
            (child, depth + 1, (key, crumb))
            for key, child in children
            if isinstance(child, dict | list)
        )
    return None


def count_problems(doc: dict[str, Any]) -> list[str]:
    """Too many nodes, edges or loops: reported before the document is read any further."""
    problems = []
    nodes, edges = doc.get("nodes"), doc.get("edges")
    if isinstance(nodes, list) and len(nodes) > MAX_NODES:
        problems.append(f"workflow: {len(nodes):,} nodes; the limit is {MAX_NODES:,}")
    if isinstance(edges, list) and len(edges) > MAX_EDGES:
        problems.append(f"workflow: {len(edges):,} edges; the limit is {MAX_EDGES:,}")
    if isinstance(nodes, list) and not problems:
        loops = sum(1 for n in nodes if isinstance(n, dict) and n.get("type") == "loop")
        if loops > MAX_LOOPS:
            problems.append(f"workflow: {loops:,} loop nodes; the limit is {MAX_LOOPS:,}")
    return problems


_CEL_KEYS = ("expression", "filter_expression", "condition")


def expression_problems(doc: dict[str, Any]) -> list[str]:
    """More CEL to parse than the limits allow (distinct texts: repeats are parsed once)."""
    texts: set[str] = set()
    for edge in _list(doc.get("edges")):
        if isinstance(edge, dict) and isinstance(edge.get("condition"), str):
            texts.add(edge["condition"])
    for node in _list(doc.get("nodes")):
        config = node.get("config") if isinstance(node, dict) else None
        if isinstance(config, dict):
            texts.update(config[k] for k in _CEL_KEYS if isinstance(config.get(k), str))
    problems = []
    if len(texts) > MAX_EXPRESSIONS:
        problems.append(
            f"workflow: {len(texts):,} distinct CEL expressions; the limit is {MAX_EXPRESSIONS:,}"
        )
    total = sum(len(t) for t in texts)
    if total > MAX_EXPRESSION_TEXT:
        problems.append(
            f"workflow: {total:,} characters of CEL in all; the limit is {MAX_EXPRESSION_TEXT:,}"
        )
    return problems


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def degree_problems(edges: list[Any]) -> list[str]:
    """Nodes with more outgoing or incoming edges than the limits allow."""
    fan_out: Counter[str] = Counter()
    fan_in: Counter[str] = Counter()
    for edge in edges:
        if isinstance(edge, dict):
            source, target = edge.get("from"), edge.get("to")
            if isinstance(source, str):
                fan_out[source] += 1
            if isinstance(target, str):
                fan_in[target] += 1
    problems = [
        f"node {label(n)}: {count:,} outgoing edges; the limit is {MAX_FAN_OUT:,}"
        for n, count in fan_out.items()
        if count > MAX_FAN_OUT
    ]
    problems += [
        f"node {label(n)}: {count:,} incoming edges; the limit is {MAX_FAN_IN:,}"
        for n, count in fan_in.items()
        if count > MAX_FAN_IN
    ]
    return problems


def id_problem(node_id: str) -> str | None:
    """``None`` when a node id is short enough, else the problem."""
    if node_id.endswith("\n"):  # the schema's pattern ends in "$", which allows this
        return f"node {label(node_id)}.id: it may only contain letters, digits, '_' and '-'"
    if len(node_id) <= MAX_ID_LENGTH:
        return None
    return (
        f"node {label(node_id)}: id is {len(node_id):,} characters long; "
        f"the limit is {MAX_ID_LENGTH}"
    )


def clip(problems: list[str]) -> list[str]:
    """At most ``MAX_PROBLEMS`` lines of at most ``MAX_PROBLEM_LENGTH`` characters each."""
    shown = [_one_line(p) for p in problems[:MAX_PROBLEMS]]
    hidden = len(problems) - len(shown)
    if hidden:
        noun = "problem" if hidden == 1 else "problems"
        shown.append(f"... and {hidden:,} more {noun}")
    return shown


def _one_line(problem: str) -> str:
    # no line breaks, and no lone surrogates (which no terminal or UTF-8 file can take)
    problem = problem.translate(_LINE_BREAKS)
    problem = problem.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(problem) <= MAX_PROBLEM_LENGTH:
        return problem
    return problem[: MAX_PROBLEM_LENGTH - 3] + "..."
