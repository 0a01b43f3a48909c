"""wfrunner: JSON workflows run as Celery tasks, choreographed by a Redis token counter.

The Celery app is ``wfrunner.app`` (``celery -A wfrunner worker``). It is imported lazily so
that compile-only uses (``wfrunner validate``) do not pay for importing Celery.
"""

from __future__ import annotations

from typing import Any

from wfrunner.errors import WfrunnerError

__all__ = ["WfrunnerError", "__version__", "app"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "app":
        from wfrunner.tasks.app import app

        return app
    raise AttributeError(f"module 'wfrunner' has no attribute {name!r}")
