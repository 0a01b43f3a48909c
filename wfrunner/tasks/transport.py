"""kombu's Redis transport, screening what BRPOP hands the worker (``broker_transport``).

Why a transport and not a Celery hook: kombu turns the bytes it pops from a queue list into
a message (``json.loads``, then ``Message(payload)``, which base64-decodes the body) before
any Celery callback runs (``on_decode_error`` and friends only see messages that got that
far), and an exception there escapes the event loop and stops the worker. The bytes are
already off the list and not yet in the ``unacked`` hash, so without this screen they are
lost as well. kombu offers no hook for that step; the least intrusive place is the
channel's Redis client: its ``parse_response`` (public redis-py API) sees the BRPOP reply
first. A reply kombu could not make a message of is parked (:mod:`wfrunner.poison`) and
replaced by "nothing popped", which kombu handles like a BRPOP timeout.

Selected with Celery's documented ``broker_transport`` setting (see ``tasks/config.py``)
for ``redis://`` brokers; ``rediss://`` brokers keep kombu's own transport (and so lack
this screen, not the worker's message checks of ``tasks/consumer.py``). A RabbitMQ broker
needs none: py-amqp hands kombu the body as bytes, unparsed, with the headers the AMQP
frame carried, so whatever a message holds it reaches the consumer's checks. Parked
records go to the state Redis (:func:`wfrunner.poison.park_in_state`), which may not be
the broker.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from wfrunner.poison import Poison, describe, park_in_state

log = logging.getLogger(__name__)


def _text(raw: bytes) -> str:
    return str(bytes_to_str(raw))  # type: ignore[no-untyped-call]


def envelope_problem(item: bytes, decode_body: Any) -> str | None:
    """Why kombu cannot make a message of ``item`` (one queue entry), or None."""
    try:
        payload = loads(_text(item))  # type: ignore[no-untyped-call]
    except (ValueError, TypeError) as exc:
        return f"envelope is not JSON ({describe(exc)})"
    if not isinstance(payload, dict):
        return f"envelope is JSON {type(payload).__name__}, not an object"
    properties = payload.get("properties")
    if not isinstance(properties, dict) or not isinstance(properties.get("delivery_tag"), str):
        return "envelope has no properties.delivery_tag: not a kombu message"
    if not isinstance(payload.get("headers", {}), (dict, type(None))):
        return "envelope headers are not an object"
    body = payload.get("body")
    if body:
        try:
            decode_body(body, properties.get("body_encoding"))
        except Exception as exc:  # whatever the codec raises, the body is unreadable
            return f"body is not valid {properties.get('body_encoding')} ({describe(exc)})"
    return None


def _disconnected(channel: Any) -> bool:
    """Whether kombu closed ``channel``'s connection (a Redis restart replaced it)."""
    return getattr(channel.connection, "client", None) is None


class QoS(kombu_redis.QoS):
    def restore_unacked(self, client: Any = None) -> None:
        """Put the channel's unacknowledged messages back on their queues, unless the
        channel lost its connection: kombu then raises AttributeError building a client
        for it while the worker reconnects, and that error stops the worker. Left in
        kombu's unacked index, the messages come back after the visibility timeout;
        meanwhile the reconciler publishes again the tokens their leases no longer hold."""
        try:
            super().restore_unacked(client)  # type: ignore[no-untyped-call]
        except AttributeError:
            if not _disconnected(self.channel):
                raise
            log.warning(
                "%d unacknowledged messages left to the visibility timeout: their channel "
                "lost its Redis connection",
                len(self._delivered),
            )
            self._delivered.clear()


class Channel(kombu_redis.Channel):
    QoS = QoS

    def _get_client(self) -> Any:
        base = super()._get_client()  # type: ignore[no-untyped-call]
        if not isinstance(base, type):
            # a key-prefixed client (global_keyprefix) is a partial: left unscreened
            log.warning("global_keyprefix set: poison envelopes are not screened")
            return base
        channel = self

        class ScreeningRedis(base):  # type: ignore[misc, valid-type]
            def parse_response(self, connection: Any, command_name: Any, **options: Any) -> Any:
                reply = super().parse_response(connection, command_name, **options)
                if command_name == "BRPOP" and reply:
                    return channel.screen(reply)
                return reply

        return ScreeningRedis

    def screen(self, reply: tuple[bytes, bytes]) -> tuple[bytes, bytes] | None:
        """The BRPOP reply if kombu can make a message of it; else park it and pop nothing."""
        queue, item = reply
        reason = envelope_problem(item, self.decode_body)
        if reason is None:
            return reply
        name = _text(queue).rsplit(self.sep, 1)[0]
        poison = Poison.of(item, name, reason)
        try:
            park_in_state(poison)
        except Exception as exc:  # the worker must go on; the log keeps the message
            log.critical("poison message LOST (%s): %s", describe(exc), poison.to_json())
        return None

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> Any:
        """Acknowledge, unless this channel lost its connection meanwhile.

        A task that straddles a Redis restart is acknowledged on the channel its message
        came from, which kombu has closed and replaced: building a client for it raises
        AttributeError (it has no connection left), and that exception stops the worker.
        The message is left unacknowledged instead: kombu gives it out again after the
        visibility timeout, and that delivery finds its token committed and is ignored."""
        try:
            return super().basic_ack(delivery_tag, multiple)  # type: ignore[no-untyped-call]
        except AttributeError:
            if not _disconnected(self):
                raise
            log.warning(
                "message %s not acknowledged: its channel lost its Redis connection (it "
                "comes back after the visibility timeout and is ignored then)",
                delivery_tag,
            )
            return None


class Transport(kombu_redis.Transport):
    Channel = Channel


#: the ``broker_transport`` value selecting this transport
TRANSPORT = f"{__name__}:Transport"
