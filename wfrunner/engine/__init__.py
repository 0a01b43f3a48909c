"""The engine: the Redis token counter, run keys, tokens and payloads.

* :mod:`~wfrunner.engine.keys`      every Redis key of a run (``{run_id}`` hash tag), op keys
* :mod:`~wfrunner.engine.tokens`    the :class:`Token` that travels in Celery messages
* :mod:`~wfrunner.engine.counter`   :class:`TokenCounter`, the facade over ``lua/`` scripts
* :mod:`~wfrunner.engine.payloads`  content-addressed JSON payloads
* :mod:`~wfrunner.engine.sdk`       :class:`Sdk`: consume / emit / advance / context
"""

from wfrunner.engine.counter import ApplyDeltaResult, TokenCounter
from wfrunner.engine.sdk import Sdk
from wfrunner.engine.tokens import Token

__all__ = ["ApplyDeltaResult", "Sdk", "Token", "TokenCounter"]
