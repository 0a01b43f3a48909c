"""Fixtures shared by the integration tests (real Redis and PostgreSQL, no worker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wfrunner.store import Store, migrate


@pytest.fixture()
def store(database_url: str) -> Iterator[Store]:
    """A Store on a fresh, migrated database."""
    migrate.upgrade(database_url)
    store = Store(database_url)
    yield store
    store.close()
