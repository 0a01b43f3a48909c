"""The pure schedule math: which fire times are due, which a catch-up policy fires, and
what an overlap policy does. No clock and no I/O: every time is passed in (aware, UTC
out), so the unit tests use fixed datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from croniter import croniter

from wfrunner.schedules.spec import ScheduleSpec

#: fires one tick starts at most under ``catch_up: all``; the older missed ones are
#: recorded as missed
CATCH_UP_CAP = 100
#: fire times one tick looks at at most: a minute cron down for a week is 10080 of them
SCAN_LIMIT = 20_000


def fire_times(
    spec: ScheduleSpec, after: datetime, until: datetime, limit: int = SCAN_LIMIT
) -> list[datetime]:
    """The schedule's fire times in (``after``, ``until``], oldest first, in UTC: the
    cron text is read in the schedule's time zone. At most the latest ``limit`` of them,
    found walking back from ``until``: a minute cron down for a year costs ``limit``
    steps, not half a million."""
    times: list[datetime] = []
    # croniter's get_prev is strictly before its start: start just after ``until``
    it = croniter(spec.cron, (until + timedelta(seconds=1)).astimezone(spec.zone))
    while len(times) < limit:
        at = it.get_prev(datetime).astimezone(UTC)
        if at <= after:
            break
        if at <= until:
            times.append(at)
    times.reverse()
    return times


def next_fire(spec: ScheduleSpec, after: datetime) -> datetime:
    """The first fire time after ``after``, in UTC."""
    at: datetime = croniter(spec.cron, after.astimezone(spec.zone)).get_next(datetime)
    return at.astimezone(UTC)


@dataclass(frozen=True)
class Due:
    """What one tick does with the fire times due since the last one."""

    #: times to fire now, oldest first
    fire: list[datetime] = field(default_factory=list)
    #: times passed over (catch-up policy), oldest first
    missed: list[datetime] = field(default_factory=list)

    @property
    def handled_through(self) -> datetime | None:
        """The latest time this tick dealt with: the schedule's new ``last_fired_at``."""
        latest = [*self.fire[-1:], *self.missed[-1:]]
        return max(latest) if latest else None


def due(
    spec: ScheduleSpec,
    last_fired_at: datetime,
    now: datetime,
    grace: timedelta,
    cap: int = CATCH_UP_CAP,
) -> Due:
    """The fire times in (``last_fired_at``, ``now``] under the schedule's catch-up policy.

    ``none``: only a time due within ``grace`` (about one tick) fires; older ones were
    missed while nothing ticked. ``latest``: the most recent time fires once. ``all``:
    each fires, the latest ``cap`` of them; the older ones are missed."""
    times = fire_times(spec, last_fired_at, now)
    if not times:
        return Due()
    if spec.catch_up == "all":
        return Due(fire=times[-cap:], missed=times[:-cap])
    if spec.catch_up == "latest" or now - times[-1] <= grace:
        return Due(fire=times[-1:], missed=times[:-1])
    return Due(missed=times)


class Action(StrEnum):
    START = "start"
    SKIP = "skip"
    WAIT = "wait"
    CANCEL_AND_START = "cancel_and_start"


def on_overlap(policy: str, previous_active: bool, waiting: bool = False) -> Action:
    """What a due fire does while the previous run of its schedule may still be going.

    ``waiting``: fires of a ``queue`` schedule wait already; a new one waits behind them,
    so fires start in their order."""
    if not previous_active and not waiting:
        return Action.START
    if policy == "queue":
        return Action.WAIT
    if policy == "cancel_previous":
        return Action.CANCEL_AND_START
    return Action.SKIP
