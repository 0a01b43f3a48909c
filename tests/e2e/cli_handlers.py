"""Handlers for the celery worker subprocess of test_cli_worker.py (no shared memory with
the test process, so state lives in files named by the node's config)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import wfrunner


@wfrunner.handler("cli.sleep")
def sleep(value: Any, config: dict[str, Any]) -> Any:
    time.sleep(float(config["seconds"]))
    return value


@wfrunner.handler("cli.fail_until_file")
def fail_until_file(value: Any, config: dict[str, Any]) -> Any:
    """Fails until the file named in config exists (the test creates it to 'fix' things)."""
    if not Path(config["path"]).exists():
        raise RuntimeError(f"{config['path']} is missing")
    return {"fixed": True}
