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


@wfrunner.handler("cli.pid_sleep")
def pid_sleep(value: Any, config: dict[str, Any]) -> Any:
    """Writes its process id to the file in config, then sleeps: a handler a cancel stops."""
    import os

    Path(config["pid_file"]).write_text(str(os.getpid()))
    time.sleep(float(config["seconds"]))
    Path(config["pid_file"] + ".done").write_text("finished")
    return value
