"""Whether PostgreSQL answers: what ``GET /healthz`` reports for the database."""

from __future__ import annotations

import sqlalchemy as sa

from wfrunner.store.base import Repository


class HealthQueries(Repository):
    def ping(self) -> None:
        """One round trip; a StoreError naming the server when it does not answer."""
        with self._tx() as session:
            session.execute(sa.select(1))
