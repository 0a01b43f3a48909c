"""The migrations build exactly the schema the models describe, and tear it down again."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from wfrunner.errors import StoreError
from wfrunner.store import migrate
from wfrunner.store.models import metadata

HEAD = "0008_paused_runs"

TABLES = {
    "workflows",
    "runs",
    "event_log",
    "applied_keys",
    "dead_letters",
    "run_counter_snapshots",
    "pending_tokens",
    "node_executions",
    "loop_state",
    "run_statistics",
    "worker_registry",
    "payloads",
    "schedules",
    "schedule_fires",
}


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_models_describe_every_table() -> None:
    assert set(metadata.tables) == TABLES


def test_upgrade_matches_models(database_url: str) -> None:
    assert migrate.current(database_url) is None
    migrate.upgrade(database_url)
    assert migrate.current(database_url) == HEAD
    assert _tables(database_url) == TABLES | {"alembic_version"}
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, metadata) == []
    engine.dispose()


def test_downgrade_then_upgrade_again(database_url: str) -> None:
    migrate.upgrade(database_url)
    migrate.downgrade(database_url)
    assert migrate.current(database_url) is None
    assert _tables(database_url) <= {"alembic_version"}
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        functions = connection.execute(
            sa.text("SELECT proname FROM pg_proc WHERE proname LIKE 'wfrunner%'")
        ).all()
    engine.dispose()
    assert functions == []
    migrate.upgrade(database_url)
    assert migrate.current(database_url) == HEAD
    assert _tables(database_url) >= TABLES


def test_event_log_rejects_update_but_allows_delete(database_url: str) -> None:
    migrate.upgrade(database_url)
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO workflows (id, name, version, definition_hash, definition, ir) "
                "VALUES ('w', 'n', 1, 'h', '{}', '{}');"
                "INSERT INTO runs (id, workflow_id, status, counter_value, inputs) "
                "VALUES ('r', 'w', 'QUEUED', 0, '{}');"
                "INSERT INTO event_log (run_id, seq, type, data) VALUES ('r', 1, 'x', '{}')"
            )
        )
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(sa.text("UPDATE event_log SET type = 'y'"))
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM runs WHERE id = 'r'"))
        left = connection.execute(sa.text("SELECT count(*) FROM event_log")).scalar_one()
    engine.dispose()
    assert left == 0


def test_unreachable_server_is_a_store_error() -> None:
    url = "postgresql+psycopg2://postgres:secret@127.0.0.1:1/nowhere"
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:1/nowhere") as caught:
        migrate.upgrade(url)
    assert "secret" not in str(caught.value)
    assert "WFRUNNER_DATABASE_URL" in str(caught.value)


def test_downgrade_one_step_removes_dead_letters_only(database_url: str) -> None:
    migrate.upgrade(database_url)
    migrate.downgrade(database_url, "0001")
    assert migrate.current(database_url) == "0001"
    assert "dead_letters" not in _tables(database_url)
    assert "event_log" in _tables(database_url)
    migrate.upgrade(database_url)
    assert "dead_letters" in _tables(database_url)


def test_downgrade_below_poison_letters_keeps_node_letters_shape(database_url: str) -> None:
    migrate.upgrade(database_url)
    migrate.downgrade(database_url, "0002")
    assert migrate.current(database_url) == "0002"
    engine = sa.create_engine(database_url)
    try:
        columns = {c["name"] for c in sa.inspect(engine).get_columns("dead_letters")}
    finally:
        engine.dispose()
    assert not columns & {"kind", "queue", "raw", "message_key"}
    migrate.upgrade(database_url)
    assert migrate.current(database_url) == HEAD
