"""The rewrite of a ``sql/`` statement for PREPARE (``wfrunner.store.prepared``): each
``:name`` parameter becomes one ``$n`` wherever it appears, casts are left alone."""

from __future__ import annotations

from wfrunner.store.history import _END_RUN, _START_RUN
from wfrunner.store.prepared import Statement


def test_each_parameter_gets_one_position_in_order_of_first_use() -> None:
    s = Statement.of("x", "SELECT :a, :b WHERE c = :a AND d = CAST(:c AS jsonb)")
    assert s.name == "wfrunner_x"
    assert s.order == ("a", "b", "c")
    assert s.body == "SELECT $1, $2 WHERE c = $1 AND d = CAST($3 AS jsonb)"


def test_a_double_colon_cast_is_not_a_parameter() -> None:
    s = Statement.of("x", "SELECT :a::jsonb, x::text")
    assert s.order == ("a",)
    assert s.body == "SELECT $1::jsonb, x::text"


def test_the_run_statements_keep_every_parameter_of_their_text_form() -> None:
    for statement in (_START_RUN, _END_RUN):
        assert set(statement.order) == set(statement.text.compile().params)
        assert ":" not in statement.body.replace("::", "")
