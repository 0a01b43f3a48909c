"""A map node's hot state as its events imply it: what :func:`wfrunner.recovery.rebuild`
restores when Redis lost a run that was mapping.

A map node's events are compact (one ``map_started`` per list, one ``map_item`` per
element done, no ``token_emitted`` per item), because which items are in flight follows
from which are done (:func:`wfrunner.engine.mapping.in_flight`). The list is a payload
(``map_started``'s ``output_ref``), so each element's payload and the item tokens are
computed again from it. Pure: events and payloads in, state out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wfrunner.engine import mapping
from wfrunner.engine.payloads import canonical_json, payload_ref
from wfrunner.engine.tokens import Token
from wfrunner.errors import WfrunnerError


@dataclass
class _Instance:
    head: Token
    total: int
    cap: int
    list_ref: str
    input_ref: str
    #: element index -> its result's payload ref
    done: dict[int, str] = field(default_factory=dict)


@dataclass
class MapHistory:
    #: tokens the map nodes consumed (heads and items done), by key
    consumed: dict[str, Token] = field(default_factory=dict)
    #: items in flight, and finish tokens emitted and not yet consumed, by key
    pending: dict[str, Token] = field(default_factory=dict)
    #: the maps hash (see lua/map_commit.lua)
    fields: dict[str, str] = field(default_factory=dict)
    #: the elements' payloads (they are never copied to PostgreSQL on their own)
    payloads: dict[str, str] = field(default_factory=dict)


def rebuild(
    events: Sequence[Mapping[str, Any]], payloads: Mapping[str, Any], consumed: Mapping[str, Any]
) -> MapHistory:
    """The map nodes' state after ``events``; ``payloads`` the run's stored payloads by
    ref, ``consumed`` the keys of the tokens other events consumed (a finish token that
    completed its node)."""
    out = MapHistory()
    for where, inst in _instances(events).items():
        _restore(out, where, inst, payloads, consumed)
    return out


def _instances(events: Sequence[Mapping[str, Any]]) -> dict[str, _Instance]:
    found: dict[str, _Instance] = {}
    for evt in events:
        kind = evt.get("type")
        if kind not in ("map_started", "map_item"):
            continue
        where = mapping.instance(str(evt["node"]), str(evt.get("scope") or ""))
        if kind == "map_started":
            found[where] = _Instance(
                head=Token.from_dict(evt["token"]),
                total=int(evt["total"]),
                cap=int(evt["concurrency"]),
                list_ref=str(evt["output_ref"]),
                input_ref=str(evt["input_ref"]),
            )
        elif where in found:
            found[where].done[int(evt["index"])] = str(evt["output_ref"])
    return found


def _restore(
    out: MapHistory,
    where: str,
    inst: _Instance,
    payloads: Mapping[str, Any],
    consumed: Mapping[str, Any],
) -> None:
    if inst.list_ref not in payloads:
        raise WfrunnerError(
            f"map {where!r}: its list (payload {inst.list_ref}) is not in PostgreSQL; "
            "the run cannot be rebuilt"
        )
    texts = [canonical_json(element) for element in payloads[inst.list_ref]]
    refs = [payload_ref(text) for text in texts]
    out.payloads.update(zip(refs, texts, strict=True))
    out.fields.update(mapping.fields(inst.head, refs, inst.input_ref))
    out.fields[f"{where}#n"] = str(inst.total)
    out.fields[f"{where}#done"] = str(len(inst.done))
    out.fields.update({f"{where}|r|{i}": ref for i, ref in inst.done.items()})
    out.consumed[inst.head.key] = inst.head
    for i in inst.done:
        token = mapping.item_token(inst.head, i, refs[i])
        out.consumed[token.key] = token
    for i in mapping.in_flight(inst.total, inst.cap, list(inst.done)):
        token = mapping.item_token(inst.head, i, refs[i])
        out.pending[token.key] = token
    finish = mapping.finish_token(inst.head, inst.input_ref)
    if len(inst.done) == inst.total and finish.key not in consumed:
        out.pending[finish.key] = finish
