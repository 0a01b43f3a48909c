"""Opaque keyset cursors: where the previous page of a newest-first list stopped.

A page is read with ``WHERE (created_at, id) < (cursor) ORDER BY created_at DESC, id DESC
LIMIT n``, which an index on those two columns answers by reading n entries, however deep
the page; an OFFSET would make PostgreSQL read and throw away every row before it. The
cursor is the last row's key, base64url-encoded so callers treat it as a token, not as a
time they could edit.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from wfrunner.errors import QueryError

#: longest cursor text accepted (a real one is about 80 characters)
MAX_CURSOR_CHARS = 400


@dataclass(frozen=True)
class Keyset:
    """The key of the last row of a page: the next page starts below it."""

    created_at: datetime
    id: str

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Keyset:
        """The keyset of a cursor this module made; QueryError for anything else."""
        bad = QueryError(
            f"cursor {cursor[:40]!r} is not a cursor a previous page returned", "cursor"
        )
        if len(cursor) > MAX_CURSOR_CHARS or not cursor.isascii():
            raise bad
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            when, key = json.loads(raw)
            created_at = datetime.fromisoformat(when)
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
            raise bad from None
        if not isinstance(key, str) or created_at.tzinfo is None:
            raise bad
        return cls(created_at, key)
