"""A definition's ``schedule`` field, read and checked.

The compiler reports every problem of the field (one line each, naming it); a schedule
that passed is read here with its defaults filled in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

OVERLAP = ("skip", "queue", "cancel_previous")
CATCH_UP = ("none", "latest", "all")

#: a cron text has five fields (minute hour day month weekday), or is an alias (@hourly)
CRON_FIELDS = 5


@dataclass(frozen=True)
class ScheduleSpec:
    cron: str
    timezone: str = "UTC"
    inputs: Any = field(default_factory=dict)
    overlap: str = "skip"
    catch_up: str = "none"
    enabled: bool = True

    @classmethod
    def from_definition(cls, value: dict[str, Any]) -> ScheduleSpec:
        """A schedule the compiler accepted (see :func:`problems`)."""
        return cls(
            cron=value["cron"],
            timezone=value.get("timezone", "UTC"),
            inputs=value.get("inputs", {}),
            overlap=value.get("overlap", "skip"),
            catch_up=value.get("catch_up", "none"),
            enabled=value.get("enabled", True),
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def problems(value: Any) -> list[str]:
    """What is wrong with a ``schedule`` field's cron text and timezone (the JSON Schema
    reports its shape and the enums), one line each naming the field."""
    if not isinstance(value, dict):
        return []
    found: list[str] = []
    zone = value.get("timezone", "UTC")
    if isinstance(zone, str):
        found += _zone_problems(zone)
    cron = value.get("cron")
    if isinstance(cron, str):
        found += cron_problems(cron)
    return found


def _zone_problems(zone: str) -> list[str]:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return [
            f"workflow.schedule.timezone: {zone[:60]!r} is not a time zone "
            "(an IANA name such as 'UTC' or 'Europe/Paris')"
        ]
    return []


def cron_problems(cron: str) -> list[str]:
    where = "workflow.schedule.cron"
    shown = repr(cron[:60])
    if not cron.strip().startswith("@") and len(cron.split()) != CRON_FIELDS:
        return [
            f"{where}: {shown} has {len(cron.split())} fields; a cron text has 5: "
            "minute hour day-of-month month day-of-week (e.g. '*/5 * * * *')"
        ]
    try:
        croniter(cron, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        return [f"{where}: {shown} never fires (no date matches it)"]
    except (CroniterError, ValueError, KeyError) as exc:
        return [f"{where}: {shown} is not a cron text: {exc}"]
    return []
