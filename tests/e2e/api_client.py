"""An ``api`` fixture for test modules other than test_api.py (importing a test module
would register its handlers a second time): the REST API served on the tests' servers,
and an httpx client carrying its token."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.http_server import serving
from wfrunner.runtime import Runtime
from wfrunner.settings import Settings

TOKEN = "e2e-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def api(worker: Any) -> Iterator[httpx.Client]:
    rt = Runtime(dataclasses.replace(Settings.from_env(), api_token=TOKEN))
    with (
        serving(rt) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as client,
    ):
        yield client
    rt.close()
