"""Locate the Lua scripts and Alembic migrations shipped with wfrunner.

In a source checkout they are the top-level ``lua/`` and ``migrations/`` folders; an
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


def migrations_dir() -> Path:
    return _find("migrations")


@cache
def lua_source(name: str) -> str:
    """The text of ``lua/<name>.lua``, read once per process."""
    return (lua_dir() / f"{name}.lua").read_text(encoding="utf-8")
