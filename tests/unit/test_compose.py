"""docker-compose.yml must validate (Debian's docker-compose needs no Docker engine)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed"
)


def compose(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        cwd=ROOT,
    )


def test_compose_file_validates_with_flower_credentials() -> None:
    result = compose({"FLOWER_BASIC_AUTH": "admin:secret"})
    assert result.returncode == 0, result.stderr
    for service in ("redis:", "postgres:", "worker:", "beat:", "flower:", "completion-worker:"):
        assert service in result.stdout
    assert "--basic-auth=admin:secret" in result.stdout


def test_flower_refuses_to_run_without_basic_auth() -> None:
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert "FLOWER_BASIC_AUTH" in result.stderr
