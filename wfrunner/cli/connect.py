"""The servers a command talks to, resolved before it does anything."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wfrunner.runtime import Runtime


def resolved_runtime(rt: Runtime | None = None) -> Runtime:
    """The runtime with both servers resolved: a misconfigured one fails the command at
    once, naming its setting, whether or not this command would have reached it."""
    rt = rt or unresolved_runtime()
    _ = (rt.redis_url, rt.database_url)
    return rt


def unresolved_runtime() -> Runtime:
    """The runtime before any server is reached: settings read, handlers imported."""
    from wfrunner.runtime import runtime

    return runtime()
