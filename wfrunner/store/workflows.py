"""Workflow registration: content-addressed, so re-registering a file is harmless."""

from __future__ import annotations

import difflib
import hashlib
import json
import uuid
from typing import Any

import sqlalchemy as sa

from wfrunner.errors import NotFoundError
from wfrunner.store.base import Repository
from wfrunner.store.models import Workflow
from wfrunner.store.records import WorkflowRecord


def canonical_json(value: Any) -> str:
    """The one JSON spelling hashes are taken over: key order and spacing never matter."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def definition_hash(definition: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(definition).encode("utf-8")).hexdigest()


class WorkflowQueries(Repository):
    def register_workflow(
        self, name: str, definition: dict[str, Any], ir: dict[str, Any]
    ) -> WorkflowRecord:
        """The existing workflow for an identical definition, else a new version of ``name``."""
        digest = definition_hash(definition)
        with self._tx() as session:
            # Serialise registrations of one name so two writers never pick the same version.
            session.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(name))))
            existing = session.execute(
                sa.select(Workflow.__table__)
                .where(Workflow.name == name, Workflow.definition_hash == digest)
                .order_by(Workflow.version.desc())
                .limit(1)
            ).first()
            if existing is not None:
                return WorkflowRecord.from_row(existing._mapping)
            latest = session.execute(
                sa.select(sa.func.max(Workflow.version)).where(Workflow.name == name)
            ).scalar_one()
            row = session.execute(
                sa.insert(Workflow)
                .values(
                    id=uuid.uuid4().hex,
                    name=name,
                    version=(latest or 0) + 1,
                    definition_hash=digest,
                    definition=definition,
                    ir=ir,
                )
                .returning(*Workflow.__table__.c)
            ).one()
            return WorkflowRecord.from_row(row._mapping)

    def get_workflow(self, workflow_id: str) -> WorkflowRecord:
        with self._tx() as session:
            row = session.execute(
                sa.select(Workflow.__table__).where(Workflow.id == workflow_id)
            ).first()
        if row is None:
            raise NotFoundError(f"no workflow with id '{workflow_id}'")
        return WorkflowRecord.from_row(row._mapping)

    def find_workflow(self, ref: str, version: int | None = None) -> WorkflowRecord | None:
        """The workflow ``ref`` names: its id, else its name (that ``version``, or the
        latest); None when there is none."""
        table = Workflow.__table__
        with self._tx() as session:
            if version is None:
                row = session.execute(sa.select(table).where(Workflow.id == ref)).first()
                if row is not None:
                    return WorkflowRecord.from_row(row._mapping)
            query = sa.select(table).where(Workflow.name == ref)
            if version is not None:
                query = query.where(Workflow.version == version)
            row = session.execute(query.order_by(Workflow.version.desc()).limit(1)).first()
        return None if row is None else WorkflowRecord.from_row(row._mapping)

    def resolve_workflow(self, reference: str, version: int | None = None) -> WorkflowRecord:
        """The workflow a user named, as :meth:`find_workflow` finds it; its
        ``NotFoundError`` says which names or versions exist, so the user can pick one."""
        found = self.find_workflow(reference, version)
        if found is not None:
            return found
        with self._tx() as session:
            versions = session.execute(
                sa.select(Workflow.version)
                .where(Workflow.name == reference)
                .order_by(Workflow.version)
            ).scalars()
            known = list(versions)
            if known:
                raise NotFoundError(
                    f"workflow '{reference}' has no version {version} "
                    f"(its versions: {_spans(known)})"
                )
            names = session.execute(
                sa.select(Workflow.name)
                .group_by(Workflow.name)
                .order_by(Workflow.name)
                .limit(NAMES_READ)
            ).scalars()
            shown = _closest_first(reference, list(names))
        listed = ", ".join(shown[:NAMES_SHOWN]) + (", ..." if len(shown) > NAMES_SHOWN else "")
        hint = f"registered names: {listed}" if shown else "no workflow is registered yet"
        if version is None:
            raise NotFoundError(f"no workflow with id '{reference}', nor one named so ({hint})")
        raise NotFoundError(f"no workflow named '{reference}' ({hint})")


#: names a "no such workflow" error lists at most
NAMES_SHOWN = 20
#: names read to pick the ones closest to a mistyped name from
NAMES_READ = 2000


def _closest_first(reference: str, names: list[str]) -> list[str]:
    """The names a user most likely meant first (a typo, a missing suffix), then the
    rest in order: with hundreds registered, the one meant would be cut off otherwise."""
    close = difflib.get_close_matches(reference, names, n=5, cutoff=0.6)
    return close + [n for n in names if n not in close]


def _spans(versions: list[int]) -> str:
    """1, 2, 3, 5 -> "1-3, 5": a name with hundreds of versions stays one short line."""
    spans: list[list[int]] = []
    for v in versions:
        if spans and v == spans[-1][1] + 1:
            spans[-1][1] = v
        else:
            spans.append([v, v])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)
