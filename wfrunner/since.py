"""``--since`` and ``?since=``: a point in time as people type it.

Either an ISO-8601 time (``2026-12-06T09:00:00Z``, ``2026-12-06``; one without a zone is
UTC, as every time wfrunner stores) or an age counted back from now: a whole number and
a unit, ``30s``, ``30m``, ``1h``, ``2d``, ``1w``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from wfrunner.errors import QueryError

_AGE = re.compile(r"(\d{1,9})([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """The time ``text`` names, timezone-aware; QueryError saying what is accepted."""
    value = text.strip()
    age = _AGE.fullmatch(value)
    if age is not None:
        amount, unit = age.groups()
        try:
            return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: int(amount)})
        except OverflowError:
            raise QueryError(f"since {value!r} reaches back before the year 1", "since") from None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        shown = text[:40].encode("ascii", "backslashreplace").decode()
        raise QueryError(
            f"since {shown!r} is neither an ISO-8601 time (2026-12-06T09:00:00Z) nor an "
            "age (30s, 30m, 1h, 2d, 1w)",
            "since",
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
