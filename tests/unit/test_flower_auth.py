"""When Flower may serve: with credentials, or bound to this machine only (the real
``celery -A wfrunner flower`` is in tests/e2e/test_flower.py)."""

from __future__ import annotations

import pytest

from wfrunner.tasks.flower import open_flower_problem


@pytest.mark.parametrize(
    ("address", "unix_socket", "basic_auth", "auth"),
    [
        ("127.0.0.1", "", None, ""),
        ("localhost", "", None, ""),
        ("::1", "", None, ""),
        ("127.0.0.2", "", None, ""),
        ("", "/run/flower.sock", None, ""),
        ("", "", ["admin:secret"], ""),
        ("0.0.0.0", "", ["a:b", "c:d"], ""),
        ("", "", None, ".*@example.com"),
    ],
)
def test_flower_may_serve(
    address: str, unix_socket: str, basic_auth: list[str] | None, auth: str
) -> None:
    assert open_flower_problem(address, unix_socket, basic_auth, auth) is None


@pytest.mark.parametrize("address", ["", "0.0.0.0", "::", "10.0.0.5", "flower.example.com"])
def test_flower_without_authentication_off_loopback_is_refused(address: str) -> None:
    problem = open_flower_problem(address, "", None, "")
    assert problem is not None and "without authentication" in problem


@pytest.mark.parametrize("credentials", [[""], ["admin"], ["admin:"], [":secret"], ["a:b", ""]])
def test_credentials_that_are_not_user_password_are_refused_even_on_loopback(
    credentials: list[str],
) -> None:
    problem = open_flower_problem("127.0.0.1", "", credentials, "")
    assert problem is not None and "not user:password" in problem
