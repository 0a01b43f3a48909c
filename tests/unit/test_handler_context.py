"""How a handler is called: the signature decision made once at registration, the
context's idempotency key, and the heartbeat's throttle."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from wfrunner import handlers
from wfrunner.context import Heartbeat, NodeContext, idempotency_key
from wfrunner.engine.leases import LeaseKeeper
from wfrunner.engine.tokens import Token
from wfrunner.errors import ConfigurationError


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    saved = dict(handlers._REGISTRY)
    yield
    handlers._REGISTRY.clear()
    handlers._REGISTRY.update(saved)


def two(input: Any, config: dict[str, Any]) -> Any:
    return input


def three(input: Any, config: dict[str, Any], context: NodeContext) -> Any:
    return input


def optional_third(input: Any, config: dict[str, Any], context: Any = None) -> Any:
    return input


def star_args(*args: Any) -> Any:
    return args


def two_and_star(input: Any, config: Any, *rest: Any) -> Any:
    return input


class Callable3:
    def __call__(self, input: Any, config: Any, context: Any) -> Any:
        return input


class Methods:
    def two(self, input: Any, config: Any) -> Any:
        return input

    def three(self, input: Any, config: Any, context: Any) -> Any:
        return input


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (two, False),
        (three, True),
        (optional_third, True),
        (star_args, False),
        (two_and_star, False),
        (Callable3(), True),
        (Methods().two, False),
        (Methods().three, True),
        (functools.partial(three, 1), False),  # input bound: (config, context) left
        (lambda i, c: i, False),
        (lambda i, c, ctx: i, True),
    ],
)
def test_the_call_form_is_decided_from_the_signature(fn: Any, expected: bool) -> None:
    handlers.handler("test.form")(fn)
    assert handlers.lookup("test.form").takes_context is expected
    assert handlers.lookup("test.form").fn is fn


def test_a_decorated_wrapper_is_judged_by_the_function_it_wraps() -> None:
    def logged(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any) -> Any:
            return fn(*args)

        return wrapper

    handlers.handler("test.wrapped")(logged(three))
    assert handlers.lookup("test.wrapped").takes_context is True


def one(input: Any) -> Any:
    return input


def four(a: Any, b: Any, c: Any, d: Any) -> Any:
    return a


def keyword_only(input: Any, config: Any, *, flag: bool) -> Any:
    return input


@pytest.mark.parametrize(
    ("fn", "problem"),
    [
        (one, "1 positional parameter"),
        (four, "4 required parameters"),
        (keyword_only, "required keyword-only parameter 'flag'"),
        (lambda: None, "0 positional parameters"),
    ],
)
def test_any_other_signature_is_refused_at_registration_naming_the_handler(
    fn: Any, problem: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        handlers.handler("test.bad")(fn)
    message = str(caught.value)
    assert "handler 'test.bad'" in message
    assert problem in message
    assert "fn(input, config) or fn(input, config, context)" in message
    assert "test.bad" not in handlers.registered()


def test_the_signature_is_inspected_once_at_registration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handlers.handler("test.once")(three)
    monkeypatch.setattr(
        handlers.inspect, "signature", lambda fn: pytest.fail("inspected on the hot path")
    )
    for _ in range(3):
        assert handlers.lookup("test.once").takes_context is True
        assert handlers.get_handler("test.once") is three


def test_the_idempotency_key_follows_the_token_not_the_delivery() -> None:
    first = Token("r1", "A", "B", "ref1", hop=1)
    redelivered = Token("r1", "A", "B", "ref2", hop=1, passes=0)  # same edge and pass
    second_pass = Token("r1", "A", "B", "ref1", hop=3, iteration=2, scope="L:2")
    other_run = Token("r2", "A", "B", "ref1", hop=1)
    key = idempotency_key("r1", first.key)
    assert key == idempotency_key("r1", redelivered.key)
    assert key != idempotency_key("r1", second_pass.key)
    assert key != idempotency_key("r2", other_run.key)


class Renewals:
    """A lease store that records what it was asked to renew."""

    def __init__(self, lost: bool = False) -> None:
        self.calls: list[tuple[dict[str, dict[str, str]], float]] = []
        self.lost = lost

    def renew(self, held: Mapping[str, Mapping[str, str]], seconds: float) -> list[str]:
        self.calls.append(({r: dict(t) for r, t in held.items()}, seconds))
        return [k for tokens in held.values() for k in tokens] if self.lost else []


def test_heartbeat_renews_at_once_then_is_a_no_op_until_the_interval_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = Renewals()
    beat = Heartbeat(LeaseKeeper(store, 15.0), "r1", "tok", "holder-1")
    now = [100.0]
    monkeypatch.setattr("wfrunner.context.time.monotonic", lambda: now[0])
    assert beat() is True
    assert store.calls == [({"r1": {"tok": "holder-1"}}, 15.0)]
    for _ in range(1000):
        assert beat() is True
    assert len(store.calls) == 1
    now[0] += beat.min_interval
    assert beat() is True
    assert len(store.calls) == 2


def test_a_lost_lease_reads_false_and_is_not_renewed_again() -> None:
    store = Renewals(lost=True)
    beat = Heartbeat(LeaseKeeper(store, 15.0), "r1", "tok", "holder-1")
    assert beat() is False
    assert beat() is False
    assert len(store.calls) == 1


def test_a_standalone_context_serves_plain_unit_tests_of_handlers() -> None:
    ctx = NodeContext.standalone("charge", iteration=2)
    assert (ctx.node_id, ctx.attempt, ctx.iteration) == ("charge", 1, 2)
    assert ctx.heartbeat() is True
    assert ctx.idempotency_key != NodeContext.standalone("charge").idempotency_key
    with pytest.raises(AttributeError):
        ctx.attempt = 2  # type: ignore[misc]
