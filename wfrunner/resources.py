"""Locate the Lua scripts, SQL statements and Alembic migrations shipped with wfrunner.

In a source checkout they are the top-level ``lua/``, ``sql/`` and ``migrations/`` folders; an
installed wheel carries them inside the package (see ``pyproject.toml``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(folder: str) -> Path:
    for candidate in (_PACKAGE / folder, _PACKAGE.parent / folder):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"wfrunner is installed without its {folder}/ folder")


def lua_dir() -> Path:
    return _find("lua")


def sql_dir() -> Path:
    return _find("sql")


def migrations_dir() -> Path:
    return _find("migrations")


@cache
def lua_source(name: str) -> str:
    """The text of ``lua/<name>.lua``, read once per process."""
    return (lua_dir() / f"{name}.lua").read_text(encoding="utf-8")


@cache
def sql_source(name: str) -> str:
    """The text of ``sql/<name>.sql``, read once per process."""
    return (sql_dir() / f"{name}.sql").read_text(encoding="utf-8")
