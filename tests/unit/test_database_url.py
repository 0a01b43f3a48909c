"""The PostgreSQL URL forms hosts and guides hand out map to the driver wfrunner installs
(SQLAlchemy 2.1 maps plain ``postgresql://`` to psycopg 3, which is not installed)."""

from __future__ import annotations

import pytest

from wfrunner.errors import StoreError
from wfrunner.store.database import create_engine, normalize_url


@pytest.mark.parametrize(
    "given, expected",
    [
        ("postgresql://u@db/app", "postgresql+psycopg2://u@db/app"),
        (
            "postgres://u:p%40ss@db:5433/app?sslmode=require",
            "postgresql+psycopg2://u:p%40ss@db:5433/app?sslmode=require",
        ),
        ("POSTGRES://u@db/app", "postgresql+psycopg2://u@db/app"),
        ("postgres+psycopg2://u@db/app", "postgresql+psycopg2://u@db/app"),
        ("postgresql+psycopg2://u@db/app", "postgresql+psycopg2://u@db/app"),
        ("postgresql+psycopg://u@db/app", "postgresql+psycopg://u@db/app"),
        ("postgresql:///app?host=/tmp/%2Fsock", "postgresql+psycopg2:///app?host=/tmp/%2Fsock"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("mypostgres://x", "mypostgres://x"),
    ],
)
def test_plain_schemes_get_the_installed_driver(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


def test_an_engine_is_made_from_a_plain_url() -> None:
    engine = create_engine("postgres://u@db.invalid/app")  # no connection is opened
    assert engine.url.drivername == "postgresql+psycopg2"
    engine.dispose()


def test_a_driver_that_is_not_installed_is_named() -> None:
    with pytest.raises(StoreError, match="names a driver that is not installed"):
        create_engine("postgresql+pg8000://u@db.invalid/app")
