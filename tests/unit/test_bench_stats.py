"""The pure pieces of ``bench.compare``: percentiles, ratios and the tables it prints."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from bench.plot import plot
from bench.stats import Result, cpu_split, percentile, ratio, ratio_table, results_table


def test_percentile_interpolates_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert percentile([7.0], 95) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_ratio_is_nan_instead_of_failing() -> None:
    assert ratio(1.0, 4.0) == 0.25
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(math.nan, 2.0))


def celery_and_wfrunner() -> list[Result]:
    return [
        Result("celery", "noop", runs=1000, nodes_per_run=1, elapsed=2.0),
        Result(
            "celery",
            "chord-diamond",
            runs=100,
            nodes_per_run=4,
            elapsed=1.0,
            latency=[0.010, 0.020],
            redis_commands=120.0,
            messages=4.0,
        ),
        Result("wfrunner", "chain-40", runs=10, nodes_per_run=40, elapsed=2.0),
        Result(
            "wfrunner",
            "diamond",
            runs=100,
            nodes_per_run=4,
            elapsed=4.0,
            latency=[0.040, 0.040],
            redis_commands=360.0,
            messages=8.0,
        ),
    ]


def test_ratio_table_divides_each_wfrunner_figure_by_its_celery_counterpart() -> None:
    lines = ratio_table(celery_and_wfrunner()).splitlines()
    row = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in lines[2:]}
    # chain-40: 10 runs x 40 nodes / 2 s = 200 nodes/s against 500 no-op tasks/s
    assert row["chain-40 nodes/s vs plain no-op tasks/s"] == ["200", "500", "0.40x", "Celery |"]
    # diamond 25 runs/s against chord 100 runs/s; p50 40 ms against 15 ms
    assert row["diamond runs/s vs chord runs/s"] == ["25.0", "100", "0.25x", "Celery |"]
    assert row["diamond p50 vs chord .get() p50"] == ["40.0", "15.0", "2.67x", "Celery |"]
    assert row["diamond Redis cmds/run vs chord"] == ["360", "120", "3.00x", "Celery |"]
    # a scenario that was not measured shows dashes, not an error
    assert row["chain-3 runs/s vs Celery chain-3 runs/s"] == ["-", "-", "-x", "- |"]


def test_lower_latency_counts_as_better() -> None:
    results = celery_and_wfrunner()
    results[3].latency = [0.005]
    lines = ratio_table(results).splitlines()
    p50 = next(line for line in lines if line.startswith("| diamond p50"))
    assert p50.endswith("| wfrunner |")


def test_results_table_has_a_row_per_result_and_dashes_for_missing_figures() -> None:
    lines = results_table(celery_and_wfrunner()).splitlines()
    assert len(lines) == 2 + 4
    noop = lines[2].split(" | ")
    assert noop[:6] == ["| celery", "noop", "1000", "1.0", "500", "500"]
    assert noop[6] == "-"  # a no-op task has no latency


def test_no_plot_without_matplotlib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    said = plot(celery_and_wfrunner(), tmp_path / "p.png")
    assert said.startswith("no plot: matplotlib is not installed")
    assert not (tmp_path / "p.png").exists()


def test_cpu_split_shows_postgresql_for_wfrunner_only() -> None:
    cpu = {"workers": 6.34, "redis": 1.5, "postgres": 2.0}
    assert cpu_split(Result("wfrunner", "diamond", cpu_ms=cpu)) == "6.3 / 1.5 / 2.0"
    assert cpu_split(Result("celery", "chord-diamond", cpu_ms=cpu)) == "6.3 / 1.5"
    assert cpu_split(Result("celery", "noop")) == "-"
    shared = {"workers": 6.3, "redis": math.nan, "postgres": 0.0}
    assert cpu_split(Result("celery", "noop", cpu_ms=shared)) == "6.3 / -"


def test_rounds_table_gives_each_rounds_ratio_and_their_median() -> None:
    from bench.compare import Round, rounds_table

    rates = ((150.0, 100.0), (120.0, 100.0), (200.0, 100.0))
    table = rounds_table([Round("diamond", "chord-diamond", 1000, a, b) for a, b in rates])
    rows = [line for line in table.splitlines() if line.startswith("| wfrunner diamond")]
    assert [row.rsplit("|", 2)[-2].strip() for row in rows] == [
        "1.50x",
        "1.20x",
        "2.00x",
        "1.50x",  # the median of the three rounds, not their mean (1.57x)
    ]
    assert "median" in rows[-1]
