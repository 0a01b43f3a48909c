"""The pure schedule math on fixed datetimes: fire times in a time zone, catch-up
policies after a downtime, overlap decisions, and the cron checks of the compiler."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wfrunner.compiler import compile_workflow
from wfrunner.errors import CompileError
from wfrunner.schedules import timing
from wfrunner.schedules.firing import grace, run_id_of
from wfrunner.schedules.spec import ScheduleSpec
from wfrunner.schedules.timing import Action, due, fire_times, next_fire, on_overlap

NOON = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TICK = timedelta(seconds=10)


def at(minutes: float) -> datetime:
    return NOON + timedelta(minutes=minutes)


def every5(catch_up: str = "none") -> ScheduleSpec:
    return ScheduleSpec("*/5 * * * *", catch_up=catch_up)


def test_fire_times_are_those_after_the_last_up_to_now_inclusive() -> None:
    assert fire_times(every5(), at(0), at(15)) == [at(5), at(10), at(15)]
    assert fire_times(every5(), at(1), at(4.9)) == []
    assert next_fire(every5(), at(0)) == at(5)


def test_a_cron_text_is_read_in_its_time_zone() -> None:
    paris = ScheduleSpec("0 9 * * *", timezone="Europe/Paris")
    assert next_fire(paris, NOON) == datetime(2030, 1, 2, 8, 0, tzinfo=UTC)  # 09:00 CET
    summer = datetime(2030, 7, 1, 12, 0, tzinfo=UTC)
    assert next_fire(paris, summer) == datetime(2030, 7, 2, 7, 0, tzinfo=UTC)  # 09:00 CEST


def test_walking_back_over_a_change_to_summer_time_finds_each_day_once() -> None:
    paris = ScheduleSpec("30 2 * * *", timezone="Europe/Paris")  # 02:30 is skipped on 31 March
    days = fire_times(paris, datetime(2030, 3, 29, tzinfo=UTC), datetime(2030, 4, 2, tzinfo=UTC))
    assert [d.day for d in days] == [29, 30, 31, 1]
    assert days[0].hour == 1 and days[-1].hour == 0  # 02:30 CET, then 02:30 CEST


def test_on_time_fire_fires_under_every_policy() -> None:
    for policy in ("none", "latest", "all"):
        assert due(every5(policy), at(0), at(5) + timedelta(seconds=3), TICK).fire == [at(5)]


def test_catch_up_none_after_an_hour_down_fires_nothing_and_misses_each_time() -> None:
    now = at(62.5)  # last fired an hour before 12:02:30; 11:05 ... 12:00 were due
    result = due(every5("none"), now - timedelta(hours=1), now, TICK)
    assert result.fire == []
    assert len(result.missed) == 12 and result.missed[-1] == at(60)
    assert result.handled_through == at(60)


def test_catch_up_none_fires_a_time_due_within_the_grace() -> None:
    result = due(every5("none"), at(0), at(60) + timedelta(seconds=5), TICK)
    assert result.fire == [at(60)] and len(result.missed) == 11


def test_catch_up_latest_fires_the_most_recent_missed_time_once() -> None:
    result = due(every5("latest"), at(2.5), at(62.5), TICK)
    assert result.fire == [at(60)]
    assert result.missed[0] == at(5) and len(result.missed) == 11


def test_catch_up_all_fires_each_missed_time_up_to_the_cap() -> None:
    result = due(every5("all"), at(2.5), at(62.5), TICK)
    assert result.fire == [at(m) for m in range(5, 61, 5)] and result.missed == []
    capped = due(every5("all"), at(2.5), at(62.5), TICK, cap=4)
    assert capped.fire == [at(45), at(50), at(55), at(60)]
    assert capped.missed == [at(m) for m in range(5, 41, 5)]
    assert capped.handled_through == at(60)


def test_a_long_downtime_looks_at_a_bounded_number_of_times() -> None:
    minutely = ScheduleSpec("* * * * *", catch_up="all")
    year = fire_times(minutely, NOON, NOON + timedelta(days=30), limit=1000)
    assert len(year) == 1000 and year[-1] == NOON + timedelta(days=30)


@pytest.mark.parametrize(
    ("policy", "active", "waiting", "action"),
    [
        ("skip", False, False, Action.START),
        ("skip", True, False, Action.SKIP),
        ("queue", True, False, Action.WAIT),
        ("queue", False, True, Action.WAIT),  # behind the fires already waiting
        ("cancel_previous", True, False, Action.CANCEL_AND_START),
        ("cancel_previous", False, False, Action.START),
    ],
)
def test_overlap_decisions(policy: str, active: bool, waiting: bool, action: Action) -> None:
    assert on_overlap(policy, active, waiting) is action


def test_run_ids_are_the_same_for_the_same_fire() -> None:
    assert run_id_of("nightly", at(5)) == run_id_of("nightly", at(5).astimezone())
    assert run_id_of("nightly", at(5)) != run_id_of("nightly", at(10))
    assert run_id_of("nightly", at(5)) != run_id_of("hourly", at(5))
    assert grace(5) == timedelta(seconds=60) and grace(60) == timedelta(seconds=120)
    assert timing.CATCH_UP_CAP == 100


def _flow(schedule: object) -> dict[str, object]:
    return {
        "nodes": [{"id": "a", "type": "transform", "config": {"expression": "1"}}],
        "edges": [],
        "schedule": schedule,
    }


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ({"cron": "* * *"}, "workflow.schedule.cron: '* * *' has 3 fields; a cron text has 5"),
        ({"cron": "61 * * * *"}, "workflow.schedule.cron: '61 * * * *' is not a cron text"),
        ({"cron": "0 0 30 2 *"}, "workflow.schedule.cron: '0 0 30 2 *' never fires"),
        ({"cron": "* * * * *", "timezone": "Mars/Base"}, "workflow.schedule.timezone: 'Mars/Base'"),
        ({"cron": "* * * * *", "overlap": "never"}, 'workflow.schedule.overlap: is "never"'),
        ({"cron": "* * * * *", "catch_up": "some"}, 'workflow.schedule.catch_up: is "some"'),
        ({"cron": "* * * * *", "enabled": "yes"}, "workflow.schedule.enabled"),
        ({"cron": "* * * * *", "every": 5}, "workflow.schedule: has unknown field 'every'"),
        ({}, "workflow.schedule: missing required field 'cron'"),
        ("*/5 * * * *", "workflow.schedule: must be of type object"),
    ],
)
def test_bad_schedules_are_one_problem_naming_the_field(schedule: object, problem: str) -> None:
    with pytest.raises(CompileError) as caught:
        compile_workflow(_flow(schedule), "flow.json")
    assert len(caught.value.problems) == 1, caught.value.problems
    assert problem in caught.value.problems[0]


def test_a_good_schedule_compiles_with_its_defaults() -> None:
    compile_workflow(_flow({"cron": "@hourly"}))
    full = {"cron": "*/5 * * * *", "timezone": "Asia/Tokyo", "inputs": {"a": 1},
            "overlap": "queue", "catch_up": "all", "enabled": False}  # fmt: skip
    compile_workflow(_flow(full))
    assert ScheduleSpec.from_definition({"cron": "@hourly"}) == ScheduleSpec(
        "@hourly", "UTC", {}, "skip", "none", True
    )


def test_beat_sends_the_tick_every_interval_on_the_completion_queue() -> None:
    from wfrunner.settings import Settings
    from wfrunner.tasks.app import app
    from wfrunner.tasks.config import COMPLETION_QUEUE, celery_settings

    settings = Settings.from_env({"WFRUNNER_SCHEDULE_INTERVAL": "7"})
    entry = celery_settings(settings, "redis://127.0.0.1:6379/0")["beat_schedule"][
        "wfrunner-fire-schedules"
    ]
    assert entry["task"] == "wfrunner.fire_schedules" and entry["schedule"] == 7.0
    assert entry["options"]["queue"] == COMPLETION_QUEUE
    from wfrunner.tasks import schedules

    assert app.tasks["wfrunner.fire_schedules"].name == schedules.fire_schedules.name
