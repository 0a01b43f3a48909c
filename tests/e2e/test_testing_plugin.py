"""The ``wfrunner.testing`` plugin, as a user's test suite uses it: pytest (pytester) runs
a user's test files in a subprocess, on a worker in that subprocess. The first suite is
the example of docs/sdk.md, read from there.

The subprocess gets an embedded Redis of its own (no Redis variable is passed on): this
session's in-process worker, when it runs, serves this session's Redis database and
would take the user's tasks, without the user's handlers. PostgreSQL is this session's
server (a fresh database per session or test)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: a python block of docs/sdk.md that starts with "# <file name>.py"
EXAMPLE_FILE = re.compile(r"```python\n# (\w+\.py)\n(.*?)```", re.DOTALL)

FAILING = """
import time

import wfrunner

@wfrunner.handler("user.slow")
def slow(value, config):
    time.sleep(3)
    return value

@wfrunner.handler("user.double")
def double(value, config):
    return {"n": value["n"] * 2}

@wfrunner.handler("user.broken")
def broken(value, config):
    raise RuntimeError("the printer is on fire")

def one(name):
    return {"nodes": [{"id": "A", "type": "function", "config": {"function_name": name}}],
            "edges": []}

def test_wrong_expectation(run_workflow):
    doc = run_workflow(one("user.double"), {"n": 2})
    assert doc.output == {"n": 5}

def test_a_run_that_fails(run_workflow):
    doc = run_workflow(one("user.broken"), {})
    assert doc.status == "COMPLETED", doc.error

def test_a_run_that_takes_too_long(run_workflow):
    run_workflow(one("user.slow"), {}, timeout=1)

def test_passes(run_workflow):
    assert run_workflow(one("user.double"), {"n": 21}).output == {"n": 42}
"""


@pytest.fixture()
def user_env(monkeypatch: pytest.MonkeyPatch, postgres_admin_url: str) -> None:
    for name in list(os.environ):
        if name.startswith(("WFRUNNER_", "CELERY_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WFRUNNER_TEST_DATABASE_URL", postgres_admin_url)
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), path])))


def _copy_example(pytester: pytest.Pytester) -> None:
    files = EXAMPLE_FILE.findall((ROOT / "docs" / "sdk.md").read_text())
    assert [name for name, _ in files] == ["conftest.py", "test_orders.py"]
    for name, code in files:
        (pytester.path / name).write_text(code)


def _run_user_suite(
    pytester: pytest.Pytester, ini: str | None = None, **files: str
) -> pytest.RunResult:
    """pytest, in a subprocess, on a user's suite: a conftest enabling the plugin, the
    ini options given and the test files."""
    (pytester.path / "conftest.py").write_text('pytest_plugins = ["wfrunner.testing"]\n')
    if ini is not None:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(**files)
    return _run(pytester)


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    # no embedded server was started in the user's WFRUNNER_HOME (~/.wfrunner: pytester
    # makes the test's folder HOME), where it would outlive the session
    assert not (pytester.path / ".wfrunner").exists()
    return result


def test_a_users_suite_runs_its_workflows_on_its_handlers(
    pytester: pytest.Pytester, user_env: None
) -> None:
    _copy_example(pytester)
    result = _run(pytester, "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*test_an_order_is_priced_and_charged PASSED*",
            "*test_a_workflow_registered_once_runs_twice PASSED*",
            "*test_an_order_without_a_quantity_fails_at_its_price PASSED*",
        ]
    )


def test_a_users_failing_tests_are_reported_with_the_runs_error(
    pytester: pytest.Pytester, user_env: None
) -> None:
    result = _run_user_suite(pytester, test_user=FAILING)
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*assert {'n': 4} == {'n': 5}*",
            "E * AssertionError: node 'A' failed: RuntimeError: the printer is on fire",
            # on a loaded machine the run may not have started within the second
            "E *wfrunner.errors.RunTimeout: run * is still * after 1 s (nodes: A *)*",
            "FAILED test_user.py::test_wrong_expectation*",
            "FAILED test_user.py::test_a_run_that_fails*",
            "FAILED test_user.py::test_a_run_that_takes_too_long*",
        ]
    )


PER_TEST = """
import pytest
from wfrunner.errors import NotFoundError

WF = {"nodes": [{"id": "A", "type": "transform", "config": {"expression": "input"}}],
      "edges": []}
seen = []

def test_first(register_workflow, wfrunner_database):
    seen.append((register_workflow(WF), wfrunner_database))

def test_second(run_workflow, wfrunner_database):
    workflow_id, database = seen[0]
    assert wfrunner_database != database
    with pytest.raises(NotFoundError):
        run_workflow(workflow_id, {})
"""


def test_a_fresh_database_per_test_when_the_ini_asks(
    pytester: pytest.Pytester, user_env: None
) -> None:
    result = _run_user_suite(pytester, "wfrunner_database_scope = test", test_scoped=PER_TEST)
    result.assert_outcomes(passed=2)


def test_a_database_scope_that_is_neither_is_refused(
    pytester: pytest.Pytester, user_env: None
) -> None:
    result = _run_user_suite(pytester, "wfrunner_database_scope = module", test_scoped=PER_TEST)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines == [
        "ERROR: wfrunner_database_scope = 'module': expected 'session' or 'test'",
        "",
    ]
