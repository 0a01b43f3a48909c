"""The installed ``wfrunner`` console script, run as a user runs it (a subprocess)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def executable() -> str:
    """The ``wfrunner`` script next to this interpreter (the venv's), else on PATH."""
    found = shutil.which("wfrunner", path=str(Path(sys.executable).parent)) or shutil.which(
        "wfrunner"
    )
    if found is None:
        raise RuntimeError("no wfrunner entry point: pip install -e . first")
    return found


def invoke(
    *args: str | bytes, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``wfrunner ARGS`` from the repository root; output decoded leniently (a test may
    pass bytes that are not UTF-8 and see them echoed)."""
    return subprocess.run(
        [executable(), *args],
        cwd=ROOT,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )
