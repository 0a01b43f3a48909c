"""A worker's Prometheus endpoint (``WFRUNNER_METRICS_PORT``; off by default).

Tasks run in prefork children, each counting in its own memory, which a scrape of one
process would not see. So ``worker_init``, in the main process before the pool forks,
gives the worker a fresh multiprocess folder (under ``PROMETHEUS_MULTIPROC_DIR`` when it
is set, else the system's temporary folder): every process of the worker writes its
samples to files there, and the main process serves their sum, plus the queue depths, on
the port. The folder is removed when the worker shuts down. A port already taken stops
the worker at once, naming the setting.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from typing import Any

import redis
from celery.signals import worker_init, worker_shutdown
from prometheus_client import start_http_server

from wfrunner import metrics
from wfrunner.settings import Settings
from wfrunner.tasks.broker import BrokerKind, broker_kind
from wfrunner.tasks.safety import APP_NAME

log = logging.getLogger(__name__)

_serving: dict[str, Any] = {}


@worker_init.connect
def _export(sender: Any = None, **_: Any) -> None:
    if getattr(getattr(sender, "app", None), "main", None) != APP_NAME:
        return
    settings = Settings.from_env()
    port = settings.metrics_port
    if not port or _serving:
        return
    folder = tempfile.mkdtemp(prefix="wfrunner-metrics-", dir=metrics.multiprocess_dir())
    metrics.use_multiprocess_dir(folder)
    # the queue depths' own client: the scrapes, in a thread of this process, must share
    # no lock with the runtime of the children it forks
    url = str(sender.app.conf.broker_url)
    client = redis.Redis.from_url(url) if broker_kind(url) is BrokerKind.REDIS else None
    try:
        server, thread = start_http_server(port, registry=metrics.registry(client))
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        message = f"WFRUNNER_METRICS_PORT={port}: cannot serve metrics there ({exc.strerror})"
        if log.hasHandlers():
            log.critical("%s", message)
        raise SystemExit(message) from exc
    _serving.update(server=server, thread=thread, folder=folder)
    log.info("Prometheus metrics on port %d (samples in %s)", port, folder)


@worker_shutdown.connect
def _stop(**_: Any) -> None:
    server = _serving.pop("server", None)
    if server is not None:
        server.shutdown()
        server.server_close()
    folder = _serving.pop("folder", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
    _serving.clear()
