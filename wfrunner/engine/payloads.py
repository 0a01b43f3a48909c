"""Content-addressed JSON payloads in the run's ``wfr:{<run_id>}:payloads`` hash.

A payload's ref is the sha256 of its canonical JSON (sorted keys, no spaces, UTF-8), so the
same value always has the same ref and is written once (HSETNX): a redelivered node that
stores its output again writes nothing new, and tokens carry a short ref instead of data.

Sizes: a payload over ``WFRUNNER_PAYLOAD_WARN_BYTES`` is logged as a warning (logger
``wfrunner.payloads``); one over ``WFRUNNER_MAX_PAYLOAD_BYTES`` is refused with a
:class:`PayloadError`, as is a value nested too deeply to encode (about 1,000 levels).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import redis

from wfrunner.engine import keys
from wfrunner.errors import PayloadError

log = logging.getLogger("wfrunner.payloads")


def canonical_json(value: Any) -> str:
    """The one JSON text of ``value``; PayloadError when it is not JSON (NaN included)."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"payload is not JSON: {str(exc)[:200]}") from None
    except RecursionError:
        raise PayloadError(
            "payload is nested too deeply to encode as JSON (lists or objects about "
            "1,000 levels deep); return a flatter output"
        ) from None


def payload_ref(text: str) -> str:
    """The content address of a canonical JSON text: its sha256 in hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encode_payload(value: Any, max_bytes: int, warn_bytes: int | None = None) -> tuple[str, str]:
    """(ref, canonical JSON) of ``value``; PayloadError when over ``max_bytes``, a logged
    warning when over ``warn_bytes``."""
    text = canonical_json(value)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PayloadError(
            f"payload is not valid Unicode text: it holds a lone surrogate "
            f"{text[exc.start : exc.start + 1]!r} (at character {exc.start})"
        ) from None
    size = len(data)
    if size > max_bytes:
        raise PayloadError(
            f"payload is {size} bytes, over the limit of {max_bytes} bytes "
            "(WFRUNNER_MAX_PAYLOAD_BYTES); return a smaller output or raise the limit"
        )
    if warn_bytes is not None and size > warn_bytes:
        log.warning(
            "payload is %d bytes, over the warning size of %d bytes "
            "(WFRUNNER_PAYLOAD_WARN_BYTES); the limit is %d bytes",
            size,
            warn_bytes,
            max_bytes,
        )
    return hashlib.sha256(data).hexdigest(), text


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
