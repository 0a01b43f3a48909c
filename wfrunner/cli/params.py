"""Arguments every command reads the same way: ids and JSON from the command line.

A shell hands a program bytes; Python turns those that are not UTF-8 into lone surrogates
(``$'\\xff'`` becomes ``'\\udcff'``), which no database or JSON text can hold. Each value is
checked here, so a bad one is a usage error naming the argument, not a driver's traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from wfrunner.compiler.source import parse_json

#: longest id accepted (ids wfrunner makes are 32 characters; Celery task ids 36)
MAX_ID_CHARS = 200
#: digits of the largest dead letter id (PostgreSQL's bigint)
MAX_LETTER_DIGITS = 18


_EMPTY = object()


def text_id(value: str) -> str:
    """An id as typed: UTF-8, printable, short. Raises typer.BadParameter otherwise."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(value).decode("ascii", "backslashreplace")
        raise typer.BadParameter(f"'{shown}' is not UTF-8 text") from None
    if not value.isprintable() or len(value) > MAX_ID_CHARS:
        raise typer.BadParameter(
            f"{value[:40]!r} is not an id (printable, at most {MAX_ID_CHARS} characters)"
        )
    return value


def letter_id(value: str) -> int:
    """A dead letter's number, as ``dlq list`` shows it."""
    if not value.isascii() or not value.isdigit() or len(value) > MAX_LETTER_DIGITS:
        raise typer.BadParameter(
            f"{text_id(value)!r} is not a dead letter id (a number, as 'wfrunner dlq list' "
            "shows it)"
        )
    return int(value)


def json_input(raw: str | None, option: str = "--input", absent: Any = _EMPTY) -> Any:
    """``--input`` (or ``option``): strict JSON (no NaN, no lone surrogates, bounded depth
    and size); ``absent`` (default ``{}``) when not given."""
    if raw is None:
        return {} if absent is _EMPTY else absent
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise typer.BadParameter("the text is not UTF-8", param_hint=f"'{option}'") from None
    return parse_json(raw, option)


RunId = Annotated[str, typer.Argument(metavar="RUN_ID", parser=text_id, show_default=False)]
NameOption = Annotated[
    str | None,
    typer.Option("--name", help="Which workflow of a file that holds a named collection."),
]
FileArgument = Annotated[Path, typer.Argument(metavar="FILE", show_default=False)]
