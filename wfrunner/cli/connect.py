"""The servers a command talks to, resolved before it does anything."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wfrunner.runtime import Runtime


def resolved_runtime() -> Runtime:
    """The runtime with both servers resolved: a misconfigured one fails the command at
    once, naming its setting, whether or not this command would have reached it."""
    from wfrunner.runtime import runtime

    rt = runtime()
    _ = (rt.redis_url, rt.database_url)
    return rt
