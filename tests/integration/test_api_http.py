"""The REST API's edges over real HTTP on real Redis and PostgreSQL, no worker needed: the
bearer token, /healthz with a server down, the OpenAPI document, and ``wfrunner serve``
itself (a subprocess), which refuses a non-loopback address without a token."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.routing import APIRoute

from tests.entry_point import ROOT, executable, invoke
from tests.http_server import free_port, serving
from wfrunner.api.routes import GUARDED, OPEN
from wfrunner.runtime import Runtime
from wfrunner.settings import Settings
from wfrunner.store import migrate

TOKEN = "s3cret-token"

#: every route of the API, as docs/api.md lists them
ROUTES = {
    ("POST", "/workflows"),
    ("GET", "/workflows"),
    ("GET", "/workflows/{workflow_id}"),
    ("POST", "/runs"),
    ("GET", "/runs"),
    ("GET", "/runs/{run_id}"),
    ("GET", "/runs/{run_id}/events"),
    ("GET", "/runs/{run_id}/events/stream"),
    ("POST", "/runs/{run_id}/cancel"),
    ("POST", "/runs/{run_id}/pause"),
    ("POST", "/runs/{run_id}/resume"),
    ("POST", "/runs/{run_id}/rerun"),
    ("POST", "/runs/{run_id}/approvals/{node_id}"),
    ("GET", "/runs/{run_id}/approvals"),
    ("GET", "/runs/{run_id}/children"),
    ("GET", "/runs/{run_id}/diagnosis"),
    ("POST", "/runs/{run_id}/repair"),
    ("GET", "/diagnosis"),
    ("GET", "/runs/{run_id}/graph.svg"),
    ("GET", "/workflows/{workflow_id}/graph.svg"),
    ("GET", "/metrics"),
    ("GET", "/dead-letters"),
    ("GET", "/limits"),
    ("POST", "/dead-letters/{letter_id}/retry"),
    ("GET", "/healthz"),
    ("GET", "/schedules"),
    ("POST", "/schedules/{name}/pause"),
    ("POST", "/schedules/{name}/resume"),
}


def _runtime(redis_url: str, database_url: str, token: str | None = TOKEN) -> Runtime:
    return Runtime(Settings(redis_url=redis_url, database_url=database_url, api_token=token))


@pytest.fixture()
def rt(redis_url: str, database_url: str) -> Iterator[Runtime]:
    migrate.upgrade(database_url)
    runtime = _runtime(redis_url, database_url)
    yield runtime
    runtime.close()


@pytest.fixture()
def base_url(rt: Runtime) -> Iterator[str]:
    with serving(rt) as url:
        yield url


def test_routes_need_the_bearer_token(base_url: str) -> None:
    for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}]:
        for method, path in [("GET", "/runs"), ("GET", "/workflows"), ("POST", "/runs")]:
            refused = httpx.request(method, base_url + path, headers=headers, json={})
            assert refused.status_code == 401, (headers, path)
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "bearer token" in refused.json()["detail"]
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(base_url + "/runs", headers=good).json() == {"items": [], "next_cursor": None}
    assert httpx.get(base_url + "/healthz").status_code == 200  # open: probes carry no token
    assert httpx.get(base_url + "/openapi.json").status_code == 200


def test_no_token_configured_asks_for_none(redis_url: str, database_url: str) -> None:
    migrate.upgrade(database_url)
    rt = _runtime(redis_url, database_url, token=None)
    with serving(rt) as url:
        assert httpx.get(url + "/workflows").json() == {"items": [], "next_cursor": None}
    rt.close()


def test_healthz_names_the_server_that_is_down(
    base_url: str, redis_url: str, database_url: str
) -> None:
    up = httpx.get(base_url + "/healthz")
    assert up.status_code == 200 and up.json() == {"redis": "ok", "postgres": "ok"}
    closed = free_port()
    no_redis = _runtime(f"redis://127.0.0.1:{closed}/0", database_url)
    no_postgres = _runtime(redis_url, f"postgresql+psycopg2://postgres@127.0.0.1:{closed}/nowhere")
    for rt, down in [(no_redis, "redis"), (no_postgres, "postgres")]:
        with serving(rt) as url:
            health = httpx.get(url + "/healthz")
            assert health.status_code == 503
            body = health.json()
            assert body[down].startswith("down: ") and str(closed) in body[down]
            other = "postgres" if down == "redis" else "redis"
            assert body[other] == "ok"
            # a route that needs the server: 503 naming it, not a traceback
            listed = httpx.get(url + "/runs", headers={"Authorization": f"Bearer {TOKEN}"})
            assert listed.status_code == (503 if down == "postgres" else 200)
            started = httpx.post(
                url + "/runs",
                json={"workflow_id": "w"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert started.status_code == 503
            assert ("REDIS" if down == "redis" else "DATABASE") in started.json()["detail"]
        rt.close()


def test_openapi_lists_every_route_with_its_response_model(base_url: str) -> None:
    spec = httpx.get(base_url + "/openapi.json").json()
    listed = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    served = {
        (method, route.path)
        for router in (*GUARDED, *OPEN)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    assert listed == served == ROUTES
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            ok = next(code for code in op["responses"] if code.startswith("2"))
            content = op["responses"][ok].get("content", {})
            assert "$ref" in content.get("application/json", {}).get("schema", {}) or (
                {"text/event-stream", "image/svg+xml", "text/plain"} & set(content)
            ), (method, path)
            if path != "/healthz":
                assert "401" in op["responses"], (method, path)
                assert op.get("security"), (method, path)
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def _serve_env(redis_url: str, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFRUNNER_")}
    return {**env, "WFRUNNER_REDIS_URL": redis_url, "WFRUNNER_DATABASE_URL": database_url, **extra}


def test_serve_refuses_a_public_address_without_a_token(redis_url: str, database_url: str) -> None:
    for host in ["0.0.0.0", "192.0.2.1", "example.com"]:
        done = invoke("serve", "--host", host, env=_serve_env(redis_url, database_url), timeout=30)
        assert done.returncode == 2, done.stderr
        assert done.stderr == (
            f"error: refusing to serve on {host} without WFRUNNER_API_TOKEN: anyone who "
            "reaches it could start runs; set the token, or listen on 127.0.0.1\n"
        )
    bad_port = invoke("serve", "--port", "0", env=_serve_env(redis_url, database_url))
    assert bad_port.returncode == 2


def test_serve_answers_with_the_token(redis_url: str, database_url: str) -> None:
    migrate.upgrade(database_url)
    port = free_port()
    env = _serve_env(redis_url, database_url, WFRUNNER_API_TOKEN=TOKEN)
    server = subprocess.Popen(
        [executable(), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "wfrunner serve did not answer"
                time.sleep(0.1)
        assert httpx.get(url + "/workflows").status_code == 401
        listed = httpx.get(url + "/workflows", headers={"Authorization": f"Bearer {TOKEN}"})
        assert listed.status_code == 200
    finally:
        server.terminate()
        server.wait(15)
        if server.stderr:
            server.stderr.close()


def test_settings_repr_hides_the_token() -> None:
    settings = dataclasses.replace(Settings(), api_token=TOKEN)
    assert TOKEN not in repr(settings)
