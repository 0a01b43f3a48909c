"""Content-addressed JSON payloads in the run's ``wfr:{<run_id>}:payloads`` hash.

A payload's ref is the sha256 of its canonical JSON (sorted keys, no spaces, UTF-8), so the
same value always has the same ref and is written once (HSETNX): a redelivered node that
stores its output again writes nothing new, and tokens carry a short ref instead of data.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import redis

from wfrunner.engine import keys
from wfrunner.errors import PayloadError


def canonical_json(value: Any) -> str:
    """The one JSON text of ``value``; PayloadError when it is not JSON (NaN included)."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"payload is not JSON: {exc}") from exc


def payload_ref(text: str) -> str:
    """The content address of a canonical JSON text: its sha256 in hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encode_payload(value: Any, max_bytes: int) -> tuple[str, str]:
    """(ref, canonical JSON) of ``value``; PayloadError when over ``max_bytes``."""
    text = canonical_json(value)
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise PayloadError(
            f"payload is {size} bytes, over the limit of {max_bytes} bytes "
            "(WFRUNNER_MAX_PAYLOAD_BYTES); return a smaller output or raise the limit"
        )
    return payload_ref(text), text


def store_payload(client: redis.Redis, run_id: str, value: Any, max_bytes: int) -> str:
    """Store ``value`` once under its ref in the run's payload hash; returns the ref."""
    ref, text = encode_payload(value, max_bytes)
    client.hsetnx(keys.payloads_key(run_id), ref, text)
    return ref


def load_payload(client: redis.Redis, run_id: str, ref: str) -> Any:
    """The value stored under ``ref``; PayloadError when the run holds no such payload."""
    text = client.hget(keys.payloads_key(run_id), ref)
    if text is None:
        raise PayloadError(f"run {run_id!r} holds no payload {ref!r} (expired or deleted?)")
    return json.loads(text)
