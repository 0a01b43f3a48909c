"""The REST API (``wfrunner serve``): :func:`create_app` builds the FastAPI app."""

from __future__ import annotations

from wfrunner.api.app import create_app

__all__ = ["create_app"]
