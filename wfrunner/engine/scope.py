"""Loop scopes: which pass of which loops a token belongs to.

A token inside a loop's second or later pass carries that loop's pass number in its scope,
``"L=2"``; nested loops stack up, ``"L=2,M=3"``; a token leaving a loop drops the entry
again. Op keys and join instances include the scope, so every pass of every loop is a
distinct set of tokens, and a join after a loop sees its inputs in the same scope whatever
number of passes the loop took. Node ids cannot contain ``=`` or ``,`` (the schema allows
letters, digits, ``_`` and ``-``), so the text form is unambiguous.
"""

from __future__ import annotations

Scope = str
TOP: Scope = ""


def parse(scope: Scope) -> list[tuple[str, int]]:
    if not scope:
        return []
    pairs = []
    for part in scope.split(","):
        loop_id, _, number = part.partition("=")
        pairs.append((loop_id, int(number)))
    return pairs


def render(pairs: list[tuple[str, int]]) -> Scope:
    return ",".join(f"{loop_id}={number}" for loop_id, number in pairs)


def pass_of(scope: Scope, loop_id: str) -> int:
    """The pass of ``loop_id`` this scope is in (1 when it has not looped yet)."""
    return dict(parse(scope)).get(loop_id, 1)


def innermost(scope: Scope) -> int:
    """The CEL ``iteration``: the pass of the innermost loop, 1 outside loops."""
    pairs = parse(scope)
    return pairs[-1][1] if pairs else 1


def next_pass(scope: Scope, loop_id: str) -> Scope:
    """The scope of a loop-back token: ``loop_id``'s pass plus one, inner loops dropped."""
    pairs = parse(scope)
    number = dict(pairs).get(loop_id, 1) + 1
    kept = _outside(pairs, loop_id)
    return render([*kept, (loop_id, number)])


def leave(scope: Scope, loop_id: str) -> Scope:
    """The scope of a token leaving ``loop_id`` (and any loop nested in it)."""
    return render(_outside(parse(scope), loop_id))


def _outside(pairs: list[tuple[str, int]], loop_id: str) -> list[tuple[str, int]]:
    for index, (name, _) in enumerate(pairs):
        if name == loop_id:
            return pairs[:index]
    return pairs
