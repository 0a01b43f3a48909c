"""The token: one unit of work in flight, carried by a Celery message as JSON.

A token travels along one edge ``from_node -> to_node`` of a run. Its identity for the
counter is (run, edge, iteration): a redelivered message carries the same token and so the
same op keys, while a loop's next pass carries ``iteration + 1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wfrunner.engine import keys


@dataclass(frozen=True)
class Token:
    run_id: str
    #: the node that emitted the token; None for an entry token
    from_node: str | None
    to_node: str
    #: content-addressed ref of the input payload (see wfrunner.engine.payloads)
    payload_ref: str | None = None
    #: path length: 0 for an entry token, the parent's hop + 1 otherwise
    hop: int = 0
    #: 1-based loop iteration; a loop-back token carries the next one
    iteration: int = 1
    #: the loop passes the token is inside (see :mod:`wfrunner.engine.scope`)
    scope: str = ""
    #: loop-backs on the token's lineage, from the run's start to here: the passes of
    #: every loop it went through, nested ones included (WFRUNNER_MAX_LOOP_PASSES caps
    #: it). Carried in the token, so a redelivered copy counts the same; not part of
    #: the token's identity.
    passes: int = 0

    def __post_init__(self) -> None:
        if self.hop < 0:
            raise ValueError(f"token hop {self.hop} must not be negative")
        if self.iteration < 1:
            raise ValueError(f"token iteration {self.iteration} must be 1 or more")
        if self.passes < 0:
            raise ValueError(f"token passes {self.passes} must not be negative")

    @classmethod
    def entry(cls, run_id: str, to_node: str, payload_ref: str | None = None) -> Token:
        """A token that starts a run at an entry node."""
        return cls(run_id, None, to_node, payload_ref, hop=0, iteration=1)

    def child(
        self,
        to_node: str,
        payload_ref: str | None = None,
        iteration: int | None = None,
        scope: str | None = None,
        passes: int | None = None,
    ) -> Token:
        """The token this token's node emits to ``to_node`` (same iteration, scope and
        passes unless given: a loop-back gives the next ones)."""
        return Token(
            run_id=self.run_id,
            from_node=self.to_node,
            to_node=to_node,
            payload_ref=payload_ref,
            hop=self.hop + 1,
            iteration=self.iteration if iteration is None else iteration,
            scope=self.scope if scope is None else scope,
            passes=self.passes if passes is None else passes,
        )

    def op_key(self, action: str) -> str:
        """The op key of ``action`` applied to this token (see :func:`keys.op_key`)."""
        return keys.op_key(
            self.run_id, action, self.from_node, self.to_node, self.iteration, self.scope
        )

    @property
    def key(self) -> str:
        """The token's identity: equal for a redelivered copy, distinct for every other."""
        return self.op_key("token")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict for a Celery message."""
        return {
            "run_id": self.run_id,
            "from_node": self.from_node,
            "to_node": self.to_node,
            "payload_ref": self.payload_ref,
            "hop": self.hop,
            "iteration": self.iteration,
            "scope": self.scope,
            "passes": self.passes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Token:
        """The token :meth:`to_dict` wrote; missing hop/iteration/passes default to an
        entry's (tokens written before passes were counted start again from 0)."""
        return cls(
            run_id=str(data["run_id"]),
            from_node=None if data.get("from_node") is None else str(data["from_node"]),
            to_node=str(data["to_node"]),
            payload_ref=None if data.get("payload_ref") is None else str(data["payload_ref"]),
            hop=int(data.get("hop", 0)),
            iteration=int(data.get("iteration", 1)),
            scope=str(data.get("scope") or ""),
            passes=int(data.get("passes", 0)),
        )
