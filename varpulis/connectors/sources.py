"""The ``.from()`` side: the :class:`Source` interface, sources by kind, and the MQTT source.

A source is built from a :class:`~varpulis.connectors.base.ConnectorConfig`
(the connector's params merged with the ``.from`` call's) by
:func:`make_source`. ``start(on_events)`` connects and returns; from then on
the source calls ``on_events(list[Event])`` **from its own network thread**
(for MQTT: paho's ``loop_start`` thread), in arrival order; the MQTT source
hands over everything that arrived in one network read (at most
``max_batch`` messages per call), so the callback can run the engine's batch
path (``Engine.process_batch``). The callback must not keep the list and
should hand the events to the engine under the pipeline's lock. An exception
in the callback is logged and counted in ``callback_errors`` (its events in
``failed_events``); the source goes on.
``stop()`` unsubscribes, disconnects and joins the thread; it is idempotent.
Nothing is buffered by the source itself: on connection loss paho reconnects
with backoff and the source re-subscribes (QoS 0 messages published meanwhile
are not received — the broker does not keep them for a clean session).
Messages that are not valid JSON, or whose JSON is not an object or an array
of objects, are counted in ``invalid``, logged (rate-limited) and skipped.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from paho.mqtt import client as paho

from varpulis.connectors.base import ConnectorConfig
from varpulis.connectors.mqtt import (
    MqttConfigError,
    _int_param,
    broker_address,
    client_id_for,
    new_client,
)
from varpulis.errors import VarpulisError
from varpulis.events import Event

__all__ = [
    "DEFAULT_TOPIC",
    "SOURCES",
    "MqttSource",
    "OnEvents",
    "Source",
    "UnknownSource",
    "events_from_message",
    "make_source",
    "register_source",
    "start_sources",
    "stop_sources",
]

logger = logging.getLogger("varpulis.connectors.sources")

OnEvents = Callable[[list[Event]], None]
#: Subscription topic when neither the ``.from`` call nor the connector names one.
DEFAULT_TOPIC = "varpulis/events/#"


class UnknownSource(VarpulisError):
    """No source implementation for a connector kind."""

    code, http_status = "unknown_connector", 400


class Source:
    """Base class of sources: ``start(on_events)``, ``stop()``, counters.

    Counters: ``received`` (messages), ``events`` (events delivered),
    ``invalid`` (messages skipped), ``callback_errors`` (failed calls) and
    ``failed_events`` (the events those calls carried).
    """

    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config
        self.received = self.events = self.invalid = self.callback_errors = 0
        self.failed_events = 0
        self.started = self.stopped = False

    def start(self, on_events: OnEvents) -> None:
        """Begin delivering events to *on_events* from the source's thread."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop delivering and release resources; idempotent."""
        self.stopped = True

    def metrics(self) -> dict[str, Any]:
        """The counters as a dict."""
        return {"received": self.received, "events": self.events, "invalid": self.invalid,
                "callback_errors": self.callback_errors,
                "failed_events": self.failed_events}  # fmt: skip


SOURCES: dict[str, type[Source]] = {}


def register_source(kind: str) -> Callable[[type[Source]], type[Source]]:
    """Class decorator: register a :class:`Source` subclass for connector *kind*."""

    def register(cls: type[Source]) -> type[Source]:
        SOURCES[kind] = cls
        return cls

    return register


def make_source(config: ConnectorConfig) -> Source:
    """Build the source for *config*; raise UnknownSource for a kind with no source."""
    cls = SOURCES.get(config.kind)
    if cls is None:
        msg = (f"connector {config.name!r}: kind {config.kind!r} cannot be used with .from() "
               f"(sources: {', '.join(sorted(SOURCES))})")  # fmt: skip
        raise UnknownSource(msg)
    return cls(config)


# --------------------------------------------------------------------------- message parsing


def _flat(value: Any) -> Any:
    # the original's MQTT source turns nested arrays/objects into null (spec §2.13)
    return None if isinstance(value, (dict, list)) else value


def _event_from_object(obj: dict[str, Any], topic: str, now_ns: int) -> Event:
    kind = obj.get("event_type")
    if not isinstance(kind, str) or not kind:
        kind = obj.get("type")
    if not isinstance(kind, str) or not kind:
        kind = topic.rsplit("/", 1)[-1] or "Unknown"
    nested = obj.get("data")
    if not isinstance(nested, dict):
        nested = obj.get("fields")
    if isinstance(nested, dict):
        fields = {k: _flat(v) for k, v in nested.items()}
    else:
        fields = {k: _flat(v) for k, v in obj.items() if k != "event_type" and k != "type"}
    return Event(kind, fields, now_ns)


def events_from_message(topic: str, payload: bytes | str, now_ns: int) -> list[Event]:
    """Turn one MQTT message into events (pure; raises ValueError for an invalid payload).

    Type: the payload's ``"event_type"``, else its ``"type"`` (non-empty
    strings), else the last topic segment, else ``Unknown``. Fields: the
    ``"data"`` object if present, else ``"fields"``, else every top-level key
    except ``event_type``/``type``; nested arrays/objects become None. A JSON
    array of objects (what a sink with ``batch_size`` publishes) gives one
    event per element. Timestamp: *now_ns* (arrival time); a payload
    ``timestamp`` is an ordinary field.
    """
    decoded = json.loads(payload)
    if isinstance(decoded, dict):
        return [_event_from_object(decoded, topic, now_ns)]
    if isinstance(decoded, list) and all(isinstance(item, dict) for item in decoded):
        return [_event_from_object(item, topic, now_ns) for item in decoded]
    msg = f"expected a JSON object or an array of objects, got {type(decoded).__name__}"
    raise ValueError(msg)


# --------------------------------------------------------------------------- MQTT


class _BufferedSocket:
    """A socket read in large chunks: paho's 1-byte and per-packet ``recv`` calls are served
    from memory, and ``pending()`` tells paho's loop not to wait in ``select`` while
    buffered bytes remain (the hook paho has for TLS sockets). Everything else is the
    wrapped socket's.
    """

    __slots__ = ("_buf", "_pos", "_sock", "chunk")

    def __init__(self, sock: Any, chunk: int = 1 << 18) -> None:
        self._sock, self.chunk = sock, chunk
        self._buf, self._pos = b"", 0

    def recv(self, size: int) -> bytes:
        """At most *size* bytes; BlockingIOError (from the socket) when none are there."""
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            buf = self._sock.recv(max(size, self.chunk))
            if len(buf) <= size:
                return buf
            self._buf, pos = buf, 0
        end = pos + size
        self._pos = end
        return buf[pos:end]

    def pending(self) -> int:
        """Bytes readable without a system call (this buffer and a TLS socket's)."""
        inner = getattr(self._sock, "pending", None)
        return len(self._buf) - self._pos + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _DrainingClient(paho.Client):
    """A paho client that reads its socket in chunks and, per network read, handles
    every complete packet buffered (≤ ``max_packets``) before calling ``on_drained()``.
    """

    #: Bytes asked of the socket per system call.
    read_chunk = 1 << 18

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_packets = 1000
        self.on_drained: Callable[[], None] = lambda: None

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        return _BufferedSocket(sock, self.read_chunk) if isinstance(sock, socket.socket) else sock

    def loop_read(self, max_packets: int = 1) -> paho.MQTTErrorCode:
        try:
            rc = super().loop_read(max_packets)
            budget = self.max_packets - 1
            sock = self._sock
            while not rc and budget > 0 and isinstance(sock, _BufferedSocket):
                if not sock.pending() or sock is not self._sock:
                    break
                rc = super().loop_read(max_packets)
                budget -= 1
            return rc
        finally:
            self.on_drained()


@register_source("mqtt")
class MqttSource(Source):
    """Subscribes to ``topic`` (wildcards allowed; default ``varpulis/events/#``).

    Params: ``host``/``port``/``url``, ``client_id`` (then ``-src``), ``context``,
    ``topic``, ``qos`` (0), ``keepalive``, ``reconnect_min``/``reconnect_max``,
    ``connect_timeout`` (s :meth:`start` waits for the subscription; 0: do not wait),
    ``max_batch`` (1000: most messages per ``on_events`` call).

    Messages are read from the socket in chunks; the events of the messages
    one read brought are delivered in one ``on_events`` call. At QoS 1 paho
    acknowledges a message when it is decoded, before that call.
    """

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__(config)
        params = config.params
        self.host, self.port = broker_address(params)
        self.topic = str(params.get("topic") or DEFAULT_TOPIC)
        self.qos = _int_param(params, "qos", 0, 0, 2)
        self.keepalive = _int_param(params, "keepalive", 60, 1, 65535)
        try:
            self.connect_timeout = float(params.get("connect_timeout", 5.0))
        except (TypeError, ValueError):
            raw = params.get("connect_timeout")
            msg = f"mqtt connector: connect_timeout must be seconds, got {raw!r}"
            raise MqttConfigError(msg) from None
        self.client_id = client_id_for(config, "-src")
        self.client = new_client(self.client_id, params, _DrainingClient)
        self.client.max_packets = _int_param(params, "max_batch", 1000, 1, 1_000_000)
        self.subscribed = threading.Event()
        self._on_events: OnEvents | None = None
        self._batch: list[Event] = []

    def start(self, on_events: OnEvents) -> None:
        """Connect (asynchronously) and subscribe; wait ≤ ``connect_timeout`` for the SUBACK.

        A broker that is not reachable yet is not an error: paho keeps trying
        with backoff and the subscription is made on connect (a warning is logged).
        """
        if self.started:
            return
        self.started = True
        self._on_events = on_events
        client = self.client
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_drained = self._deliver
        client.connect_async(self.host, self.port, keepalive=self.keepalive)
        client.loop_start()
        if self.connect_timeout > 0 and not self.subscribed.wait(self.connect_timeout):
            logger.warning("mqtt source %r: not subscribed to %r on %s:%d after %.1f s; "
                           "still trying", self.config.name, self.topic, self.host, self.port,
                           self.connect_timeout)  # fmt: skip

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:  # fmt: skip
        if reason.is_failure:
            logger.warning("mqtt source %r: connection refused: %s", self.config.name, reason)
            return
        client.subscribe(self.topic, self.qos)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:  # fmt: skip
        if any(r.is_failure for r in reasons):
            logger.warning("mqtt source %r: subscription to %r refused: %s",
                           self.config.name, self.topic, reasons)  # fmt: skip
            return
        self.subscribed.set()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:  # fmt: skip
        self.subscribed.clear()
        if not self.stopped:
            logger.warning("mqtt source %r: disconnected (%s); reconnecting with backoff",
                           self.config.name, reason)  # fmt: skip

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.received += 1
        try:
            events = events_from_message(message.topic, message.payload, time.time_ns())
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError included
            self.invalid += 1
            if self.invalid <= 10 or self.invalid % 1000 == 0:
                logger.warning("mqtt source %r: skipped a message on %r: %s (%d skipped so far)",
                               self.config.name, message.topic, exc, self.invalid)  # fmt: skip
            return
        self._batch.extend(events)

    def _deliver(self) -> None:
        """Hand the events of the last read to ``on_events`` (paho's thread)."""
        events = self._batch
        if not events:
            return
        self._batch = []
        self.events += len(events)
        try:
            self._on_events(events)  # type: ignore[misc]
        except Exception:  # the source must outlive a failing consumer
            self.callback_errors += 1
            self.failed_events += len(events)
            if self.callback_errors <= 10 or self.callback_errors % 1000 == 0:
                logger.exception("mqtt source %r: on_events failed (%d event(s))",
                                 self.config.name, len(events))  # fmt: skip

    def stop(self) -> None:
        """Disconnect and join paho's thread; idempotent."""
        if self.stopped:
            return
        self.stopped = True
        if self.started:
            self.client.disconnect()
            self.client.loop_stop()


# --------------------------------------------------------------------------- pipelines


def start_sources(runtime: Any, feed: OnEvents) -> list[Source]:
    """Start one source per ``.from(...)`` of *runtime*, each delivering to *feed*.

    The configs come from ``runtime.source_configs()`` or
    ``runtime.engine.source_configs()``; a runtime with neither gets none
    (``[]``). If a source fails to start, those already started are stopped
    and the error propagates. Stop them with :func:`stop_sources`, never while
    holding a lock *feed* takes (stopping joins the threads that call it).
    """
    configs = getattr(runtime, "source_configs", None)
    if configs is None:
        configs = getattr(getattr(runtime, "engine", None), "source_configs", None)
    if configs is None:
        return []
    started: list[Source] = []
    try:
        for config in configs():
            source = make_source(config)
            source.start(feed)
            started.append(source)
    except Exception:
        stop_sources(started)
        raise
    return started


def stop_sources(sources: list[Source]) -> None:
    """Stop every source of *sources* (each failure logged; the others still stop)."""
    for source in sources:
        try:
            source.stop()
        except Exception:
            logger.exception("stopping source %r failed", source.config.name)
