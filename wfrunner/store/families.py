"""Runs that start runs (sub-workflows), and the one-off records of an ended run's
aftermath (its on_failure handler): docs/subworkflows.md, docs/failures.md."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm

from wfrunner.errors import NotFoundError
from wfrunner.states import ACTIVE_RUN_STATES, TERMINAL_RUN_STATES, RunStatus
from wfrunner.store.base import Repository
from wfrunner.store.models import EventLog, Run, Workflow
from wfrunner.store.records import RunRecord


class FamilyQueries(Repository):
    def child_runs(self, run_id: str, active_only: bool = False) -> list[RunRecord]:
        """The runs ``run_id``'s subworkflow nodes started, oldest first."""
        query = sa.select(Run.__table__).where(Run.parent_run_id == run_id)
        if active_only:
            query = query.where(Run.status.in_([s.value for s in ACTIVE_RUN_STATES]))
        with self._tx() as session:
            rows = session.execute(query.order_by(Run.created_at, Run.id)).all()
        return [RunRecord.from_row(row._mapping) for row in rows]

    def ended_children_of_active_parents(self, limit: int = 1000) -> list[RunRecord]:
        """Child runs that have ended while their parent is still active: what the
        reconciler checks was passed on to the parent (oldest end first)."""
        parent = sa.orm.aliased(Run)
        with self._tx() as session:
            rows = session.execute(
                sa.select(Run.__table__)
                .join(parent, parent.id == Run.parent_run_id)
                .where(
                    parent.status.in_([s.value for s in ACTIVE_RUN_STATES]),
                    Run.status.in_([s.value for s in TERMINAL_RUN_STATES]),
                )
                .order_by(Run.completed_at)
                .limit(limit)
            ).all()
        return [RunRecord.from_row(row._mapping) for row in rows]

    def failed_without(
        self, kinds: Sequence[str], after_s: float, within_s: float, limit: int = 1000
    ) -> list[str]:
        """FAILED runs of workflows with an on_failure handler that ended between
        ``within_s`` and ``after_s`` seconds ago and whose log holds no event of ``kinds``
        (their handler's outcome is not recorded)."""
        now = sa.func.now()
        recorded = sa.exists().where(EventLog.run_id == Run.id, EventLog.type.in_(list(kinds)))
        with self._tx() as session:
            rows = session.execute(
                sa.select(Run.id)
                .join(Workflow, Workflow.id == Run.workflow_id)
                .where(
                    Run.status == RunStatus.FAILED.value,
                    # bounds the scan by the (status, created_at) index
                    Run.created_at > now - sa.func.make_interval(0, 0, 0, 0, 0, 0, 2 * within_s),
                    Run.completed_at < now - sa.func.make_interval(0, 0, 0, 0, 0, 0, after_s),
                    Run.completed_at > now - sa.func.make_interval(0, 0, 0, 0, 0, 0, within_s),
                    Workflow.ir.has_key("on_failure"),
                    ~recorded,
                )
                .order_by(Run.completed_at)
                .limit(limit)
            ).all()
        return [str(row[0]) for row in rows]

    def ancestors(self, run_id: str) -> list[str]:
        """The run's parent, its parent's parent, ... (empty for a top-level run)."""
        tree = (
            sa.select(Run.id, Run.parent_run_id, sa.literal(0).label("depth"))
            .where(Run.id == run_id)
            .cte("tree", recursive=True)
        )
        up = sa.select(Run.id, Run.parent_run_id, (tree.c.depth + 1).label("depth")).join(
            tree, Run.id == tree.c.parent_run_id
        )
        tree = tree.union_all(up)
        with self._tx() as session:
            rows = session.execute(
                sa.select(tree.c.id).where(tree.c.depth > 0).order_by(tree.c.depth)
            ).all()
        return [str(row[0]) for row in rows]

    def append_event_once(
        self, run_id: str, kind: str, node: str | None, data: Any, unless: Sequence[str]
    ) -> bool:
        """Append one event to the run's log unless it holds an event of a type in
        ``unless`` already; True when this call appended it. The run's row lock orders
        racing callers (two deliveries of one task): one of them appends."""
        with self._tx() as session:
            seq = session.execute(
                sa.select(Run.event_seq).where(Run.id == run_id).with_for_update()
            ).scalar_one_or_none()
            if seq is None:
                raise NotFoundError(f"no run with id '{run_id}'")
            found = session.execute(
                sa.select(EventLog.id)
                .where(EventLog.run_id == run_id, EventLog.type.in_(list(unless)))
                .limit(1)
            ).first()
            if found is not None:
                return False
            session.execute(sa.update(Run).where(Run.id == run_id).values(event_seq=seq + 1))
            session.execute(
                sa.insert(EventLog).values(
                    run_id=run_id, seq=seq + 1, type=kind, node_id=node, data=data
                )
            )
        return True
