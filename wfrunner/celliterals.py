"""List and map literals whose failing element says where it is, and indexing that
passes a failure on.

celpy keeps an error value inside a map literal (``{'a': input.nope}`` became a map holding
the error, reported only as "not JSON" when the result was encoded) and returns a list
literal's first error as it is, with no word of which element failed. Here both stop at
their first failing element and return a :class:`LiteralError` naming it: its path in
the literal (``['a']``, ``[2]``, ``['a']['b'][0]`` through nested literals) and the text
of its sub-expression, which :func:`describe` renders for the error message.

With :mod:`wfrunner.conditions` and :mod:`wfrunner.celvalues`, the only modules that
import ``celpy``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lark
from celpy import celtypes
from celpy.evaluation import CELEvalError, Evaluator

#: characters of a sub-expression quoted in a message
_SHOWN = 80

Span = tuple[int, int] | None


def _span(tree: lark.Tree[Any]) -> Span:
    meta = tree.meta
    if getattr(meta, "empty", True):
        return None
    return (meta.start_pos, meta.end_pos)


class LiteralError(CELEvalError):
    """An element of a list or map literal failed: ``path`` to it, the ``element``'s span
    in the expression text, and the ``cause`` (itself when the element is a literal that
    failed inside, the paths joined: ``['a'][0]``)."""

    def __init__(
        self, cause: CELEvalError, step: str, element: lark.Tree[Any], literal: lark.Tree[Any]
    ) -> None:
        super().__init__(*cause.args, tree=cause.tree)
        inner = cause if isinstance(cause, LiteralError) else None
        if inner is not None and inner.literal != _span(element):
            inner = None  # a literal inside a larger element: its own message is kept whole
        self.path: str = step + (inner.path if inner else "")
        self.element: Span = inner.element if inner else _span(element)
        self.cause: CELEvalError = inner.cause if inner else cause
        self.literal: Span = _span(literal)


def _key(key: Any) -> str:
    if isinstance(key, celtypes.BoolType):
        return "true" if key else "false"
    return repr(str(key)) if isinstance(key, str) else str(key)


class LiteralEvaluator(Evaluator):
    """celpy's evaluator with list and map literals that report their failing element."""

    def primary(self, tree: lark.Tree[Any]) -> Any:
        child = tree.children[0] if len(tree.children) == 1 else None
        if isinstance(child, lark.Tree) and child.children:
            if child.data == "list_lit":
                return self._list(child.children[0], tree)
            if child.data == "map_lit":
                return self._map(child.children[0], tree)
        return super().primary(tree)

    def member_index(self, tree: lark.Tree[Any]) -> Any:
        """``x[i]`` of a value that failed is that failure (celpy reported "no matching
        overload for _[_] applied to CELEvalError" for ``input.nope[0]``)."""
        values: list[Any] = self.visit_children(tree)
        failed = next((v for v in values if isinstance(v, CELEvalError)), None)
        if failed is not None:
            return failed
        # celpy's own indexing, on the values already evaluated (not a tree: kept as they are)
        return super().member_index(lark.Tree(tree.data, values, tree.meta))

    def _list(self, items: lark.Tree[Any], literal: lark.Tree[Any]) -> Any:
        values: list[Any] = self.visit_children(items)
        for index, value in enumerate(values):
            if isinstance(value, CELEvalError):
                return LiteralError(value, f"[{index}]", items.children[index], literal)
        return celtypes.ListType(values)

    def _map(self, entries: lark.Tree[Any], literal: lark.Tree[Any]) -> Any:
        values: list[Any] = self.visit_children(entries)
        for index, value in enumerate(values):
            if isinstance(value, CELEvalError):
                step = f"[{_key(values[index - 1])}]" if index % 2 else f"key #{index // 2 + 1}"
                return LiteralError(value, step, entries.children[index], literal)
        result = celtypes.MapType()
        try:  # as celpy's map literal: a repeated or unhashable key is an error value
            for key, value in zip(values[0::2], values[1::2], strict=True):
                if key in result:
                    raise ValueError(f"Duplicate key {key!r}")
                result[key] = value
        except (ValueError, TypeError) as exc:
            return CELEvalError(exc.args[0], exc.__class__, exc.args, tree=literal)
        return result


def describe(error: CELEvalError, expression: str, reason: Callable[[CELEvalError], str]) -> str:
    """``reason(error)``, preceded for a literal's element by where it is and its text."""
    if not isinstance(error, LiteralError):
        return reason(error)
    text = ""
    if error.element is not None:
        start, end = error.element
        shown = expression[start:end]
        text = f" ({shown[:_SHOWN]}{'...' if len(shown) > _SHOWN else ''})"
    return f"at {error.path}{text}: {describe(error.cause, expression, reason)}"


__all__ = ["LiteralError", "LiteralEvaluator", "describe"]
