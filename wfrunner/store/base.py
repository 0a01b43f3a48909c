"""The transaction helper every query module shares."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.orm import Session, sessionmaker

from wfrunner.errors import NotFoundError
from wfrunner.store.database import create_engine, create_sessionmaker, translated_errors

FOREIGN_KEY_VIOLATION = "23503"

#: what a query helper runs in: an ORM session, or the Core connection of a per-run
#: statement's transaction (:meth:`Repository._hot_tx`)
Tx = Session | sa.Connection
_MISSING_KEY = re.compile(
    r'Key \((?P<column>\w+)\)=\((?P<value>.*)\) is not present in table "(?P<table>\w+)"'
)


class Repository:
    """Owns the engine; subclasses add one family of queries each."""

    def __init__(self, database_url: str, prepare: bool = True) -> None:
        self.database_url = database_url
        self._engine = create_engine(database_url)
        #: the per-run statements run as prepared statements (store/prepared.py)
        self._prepare = prepare
        self._sessions: sessionmaker[Session] = create_sessionmaker(self._engine)

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """One transaction; lost servers, missing schema and dangling ids become StoreErrors."""
        with self._translated(), self._sessions.begin() as session:
            yield session

    @contextmanager
    def _hot_tx(self) -> Iterator[sa.Connection]:
        """One transaction on a Core connection, for the statements every run makes: an ORM
        session costs about 0.1 ms of client CPU per transaction more (measured on the
        development VM), which the per-run start and end need none of."""
        with self._translated(), self._engine.begin() as connection:
            yield connection

    @contextmanager
    def _translated(self) -> Iterator[None]:
        with translated_errors(self._engine.url):
            try:
                yield
            except exc.IntegrityError as error:
                missing = _missing_reference(error)
                if missing is None:
                    raise
                raise missing from error


def _missing_reference(error: exc.IntegrityError) -> NotFoundError | None:
    """A NotFoundError naming the missing run or workflow; None for other violations."""
    if getattr(error.orig, "pgcode", None) != FOREIGN_KEY_VIOLATION:
        return None
    detail = getattr(getattr(error.orig, "diag", None), "message_detail", None) or ""
    match = _MISSING_KEY.search(detail)
    if match is None:
        return NotFoundError(f"a referenced record does not exist: {detail or error.orig}")
    noun = match["table"].removesuffix("s")
    return NotFoundError(f"no {noun} with id '{match['value']}'")
