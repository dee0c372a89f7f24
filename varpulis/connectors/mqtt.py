"""The ``mqtt`` sink: each event's sink payload published to a topic with paho-mqtt 2.x.

Threads: :meth:`MqttSink.send` runs on the engine's thread; it serialises the
events (:func:`~varpulis.events.dumps_sink`, one message per event, or JSON
arrays of ``batch_size`` payloads; :meth:`MqttSink.send_batch` serialises a
columnar batch straight from its columns, same bytes) *before* taking the
sink's lock. At QoS 0 the PUBLISH packets of one call are framed here and
written with one non-blocking ``send`` from the calling thread when paho has
nothing queued (no wake-up of paho's thread, no second thread contending for
the GIL per message); what the socket does not take, or everything when paho
has packets queued, goes to the front/back of paho's queue for its network
thread (``loop_start``), which also reads, pings, and reconnects with
exponential backoff (``reconnect_min`` .. ``reconnect_max`` seconds) when the
connection drops; nothing raises into the engine. Socket writes from both
threads are serialised by the sink's lock (paho's ``loop_write`` takes it too),
so packets never interleave. Inside :func:`coalesced` (e.g. one batch of input
events), a thread's sends are held and written once at the end of the block.
What is buffered: paho's unbounded outgoing queue while connected (QoS 0 by default,
``qos:`` honoured, a large inflight window), and this sink's own ordered buffer
of payloads published while disconnected (counted in
``queued_while_disconnected``, replayed in order from paho's thread on
reconnect, before new payloads; beyond ``buffer_limit`` messages they are
counted in ``dropped`` with a warning). QoS 0 payloads paho had queued but not
written when the connection dropped are counted in ``lost_on_disconnect`` (and
``dropped``) with a warning; bytes already in the kernel's socket buffer cannot
be accounted for at QoS 0 — use ``qos: 1`` for at-least-once. :meth:`flush`
waits, bounded by ``flush_timeout``, until everything handed over is written
(QoS 0) or acknowledged (QoS 1/2).
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from paho.mqtt import client as paho

from varpulis.connectors.base import ConnectorConfig, Sink, batch_payloads, number_param
from varpulis.connectors.registry import register_sink
from varpulis.errors import VarpulisError
from varpulis.events import _SINK_ENCODER, Event, dumps_sink, to_sink_payload

if TYPE_CHECKING:
    from kernels.columnar import ColumnarBatch

__all__ = [
    "MqttConfigError",
    "MqttSink",
    "broker_address",
    "client_id_for",
    "coalesced",
    "new_client",
]

logger = logging.getLogger("varpulis.connectors.mqtt")

_PUBLISH = 0x30
_ids = itertools.count(1)


class MqttConfigError(VarpulisError):
    """A connector parameter of an MQTT connector is invalid."""

    code, http_status = "invalid_connector", 400


def _int_param(params: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    return number_param(params, key, default, int, MqttConfigError, low=low, high=high,
                        what="mqtt connector")  # fmt: skip


def _float_param(params: Mapping[str, Any], key: str, default: float) -> float:
    return number_param(params, key, default, float, MqttConfigError, what="mqtt connector")


def broker_address(params: Mapping[str, Any]) -> tuple[str, int]:
    """(host, port) from ``host``/``port`` or a ``url`` such as ``mqtt://h:1883`` (url wins)."""
    host = str(params.get("host", "localhost"))
    port = _int_param(params, "port", 1883, 1, 65535)
    url = params.get("url")
    if url:
        parts = urlsplit(str(url) if "://" in str(url) else f"mqtt://{url}")
        host = parts.hostname or host
        port = parts.port or port
    return host, port


def client_id_for(config: ConnectorConfig, suffix: str = "") -> str:
    """A client id unique in this process and across processes.

    ``client_id`` (default: the connector name), then ``-<context>`` when the
    params carry a ``context`` (else ``-<pid>``), then *suffix*, then
    ``-<n>`` for the second and later clients of this process (two clients
    with one id would take turns kicking each other off the broker).
    """
    base = str(config.params.get("client_id") or config.name)
    context = config.params.get("context")
    ident = f"{base}-{context}" if context else f"{base}-{os.getpid()}"
    n = next(_ids)
    return f"{ident}{suffix}" + (f"-{n}" if n > 1 else "")


def new_client(client_id: str, params: Mapping[str, Any],
               cls: type[paho.Client] = paho.Client) -> paho.Client:  # fmt: skip
    """A paho 2.x client (callback API v2, MQTT 3.1.1, clean session) tuned for throughput.

    *cls* is ``paho.Client`` or a subclass taking the same arguments.
    """
    client = cls(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                 protocol=paho.MQTTv311, clean_session=True)  # fmt: skip
    client.max_inflight_messages_set(_int_param(params, "max_inflight", 65535, 1, 65535))
    client.max_queued_messages_set(0)  # unbounded: this side never drops what it accepted
    # paho accepts float delays although its annotations say int
    low = max(0.01, _float_param(params, "reconnect_min", 0.2))
    high = max(low, _float_param(params, "reconnect_max", 30.0))
    client.reconnect_delay_set(min_delay=low, max_delay=high)  # type: ignore[arg-type]
    if params.get("username"):
        client.username_pw_set(str(params["username"]), params.get("password"))
    return client


class _LockedWriter(paho.Client):
    """A paho client whose socket writes take ``write_lock`` (shared with :class:`MqttSink`).

    paho's network thread writes only in ``loop_write``; holding the same lock,
    the sink may write whole packets on the socket from its own thread.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.write_lock = threading.RLock()

    def loop_write(self) -> paho.MQTTErrorCode:
        with self.write_lock:
            return super().loop_write()


#: The paho internals the direct QoS 0 path needs (checked once, at import).
_DIRECT_OK = all(hasattr(paho.Client, a) for a in ("_packet_queue", "_mid_generate")) and all(
    a in paho.Client.__init__.__code__.co_names for a in ("_out_packet", "_sock", "_sockpairW")
)
_published = paho.MQTTMessageInfo(0)
_published._set_as_published()  # noqa: SLF001 - the "already written" marker for flush()


def _header(size: int) -> bytes:
    """A QoS 0 PUBLISH fixed header for a remaining length of *size* bytes."""
    if size < 128:
        return bytes((_PUBLISH, size))
    if size < 16384:
        return bytes((_PUBLISH, size & 127 | 128, size >> 7))
    head = bytearray((_PUBLISH,))
    while True:  # MQTT variable-length "remaining length"
        byte, size = size % 128, size // 128
        head.append(byte | 0x80 if size else byte)
        if not size:
            return bytes(head)


class _Pending(threading.local):
    """Per thread: sinks holding payloads inside :func:`coalesced` (insertion order)."""

    def __init__(self) -> None:
        self.depth = 0
        self.sinks: dict[MqttSink, list[tuple[bytes, int]]] = {}


_pending = _Pending()


@contextmanager
def coalesced() -> Iterator[None]:
    """Hold this thread's MQTT sends until the block ends, then write each sink's at once.

    Per sink, messages keep their order; nested blocks write at the outermost
    exit (also when the block raises). Other threads are not affected.
    """
    state = _pending
    state.depth += 1
    try:
        yield
    finally:
        state.depth -= 1
        if not state.depth and state.sinks:
            held, state.sinks = state.sinks, {}
            for sink, payloads in held.items():
                sink._send_payloads(payloads)  # noqa: SLF001 - same module


@register_sink("mqtt")
class MqttSink(Sink):
    """Publishes sink payloads to ``topic`` (see the module doc for threads and buffering).

    Params: ``host``/``port``/``url``, ``client_id``, ``context``, ``topic``
    (default ``<name>-output``), ``qos`` (0), ``batch_size`` (1: one message
    per event), ``keepalive`` (60 s), ``reconnect_min``/``reconnect_max``
    (0.2/30 s), ``buffer_limit`` (100,000 messages held while disconnected),
    ``flush_timeout`` (10 s), ``username``/``password``.
    """

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__(config)
        params = config.params
        self.host, self.port = broker_address(params)
        self.topic = str(params.get("topic") or f"{config.name}-output")
        self._topic_bytes = self.topic.encode()
        self._prefix = len(self._topic_bytes).to_bytes(2, "big") + self._topic_bytes
        if not self.topic or "+" in self.topic or "#" in self.topic:
            msg = f"mqtt connector {config.name!r}: cannot publish to topic {self.topic!r}"
            raise MqttConfigError(msg)
        self.qos = _int_param(params, "qos", 0, 0, 2)
        self.batch_size = _int_param(params, "batch_size", 1, 1, 1_000_000)
        self.buffer_limit = _int_param(params, "buffer_limit", 100_000, 0, 10**9)
        self.flush_timeout = _float_param(params, "flush_timeout", 10.0)
        self.client_id = client_id_for(config)
        self.queued_while_disconnected = 0
        self.lost_on_disconnect = 0
        self.reconnects = 0
        self.publish_errors = 0
        self.connected = False
        self._ever_connected = False
        self._buffer: deque[tuple[bytes, int]] = deque()  # (payload, events in it)
        self._last: paho.MQTTMessageInfo | None = None
        self._packed: dict[int, int] = {}  # mid of a packed write -> messages in it
        # The packed QoS 0 path frames PUBLISH packets itself and writes them or
        # queues them with one paho call; it relies on paho 2.x internals, so it
        # is used only where they exist.
        self._fast = self.qos == 0 and _DIRECT_OK
        client = self.client = new_client(self.client_id, params, _LockedWriter)
        self._lock = client.write_lock  # one lock: no ordering between two
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        keepalive = _int_param(params, "keepalive", 60, 1, 65535)
        client.connect_async(self.host, self.port, keepalive=keepalive)
        client.loop_start()

    # ------------------------------------------------------------------ paho thread

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:  # fmt: skip
        if reason.is_failure:
            logger.warning("mqtt sink %r: broker %s:%d refused the connection: %s",
                           self.config.name, self.host, self.port, reason)  # fmt: skip
            return
        with self._lock:
            if self._ever_connected:
                self.reconnects += 1
            self._ever_connected = True
            replay = len(self._buffer)
            while self._buffer:
                payload, count = self._buffer.popleft()
                self._publish_one(payload, count)
            self.connected = True
        if replay:
            logger.info("mqtt sink %r: reconnected, replayed %d buffered message(s)",
                        self.config.name, replay)  # fmt: skip

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:  # fmt: skip
        with self._lock:
            self.connected = False
            lost = 0
            if self.qos == 0:
                for packet in list(getattr(client, "_out_packet", ())):
                    if packet["command"] & 0xF0 == _PUBLISH:
                        lost += self._packed.get(packet["mid"], 1) if self._fast else 1
            self.lost_on_disconnect += lost
            self.dropped += lost
        logger.warning(
            "mqtt sink %r: disconnected from %s:%d (%s); reconnecting with backoff%s",
            self.config.name,
            self.host,
            self.port,
            reason,
            f"; {lost} QoS 0 message(s) not yet written are lost" if lost else "",
        )

    # ------------------------------------------------------------------ engine thread

    def _payloads(self, events: Sequence[Event]) -> list[tuple[bytes, int]]:
        size = self.batch_size
        if size == 1:
            return [(dumps_sink(e).encode(), 1) for e in events]
        out = []
        for i in range(0, len(events), size):
            chunk = events[i : i + size]
            try:
                text = _SINK_ENCODER.encode([to_sink_payload(e) for e in chunk])
            except ValueError:  # a non-finite float: let dumps_sink map it to null
                text = "[" + ",".join(dumps_sink(e) for e in chunk) + "]"
            out.append((text.encode(), len(chunk)))
        return out

    def _publish_one(self, payload: bytes, count: int) -> bool:
        """Hand one message to paho (lock held); False if the connection is gone."""
        try:
            info = self.client.publish(self.topic, payload, self.qos)
        except (ValueError, RuntimeError) as exc:
            self.publish_errors += 1
            self.dropped += count
            logger.warning("mqtt sink %r: publish failed: %s", self.config.name, exc)
            return True
        if info.rc == paho.MQTT_ERR_NO_CONN:
            if self.qos:  # paho keeps QoS 1/2 messages and resends them after reconnecting
                self.queued_while_disconnected += count
                self.sent += count
                self._last = info
            return self.qos > 0
        self._last = info
        self.sent += count
        return True

    def _publish_packed(self, payloads: list[tuple[bytes, int]]) -> bool:
        """QoS 0: write *payloads* as back-to-back PUBLISH packets (lock held).

        Written on the socket here when paho has nothing queued and the socket
        is a plain one; the unwritten rest goes to the front of paho's queue.
        Otherwise the packets are queued behind paho's. False: no connection.
        """
        client = self.client
        sock = client._sock  # noqa: SLF001 - see _fast
        if sock is None:
            return False
        prefix = self._prefix
        size = len(prefix)
        parts = []
        for payload, _count in payloads:
            parts.append(_header(size + len(payload)))
            parts.append(prefix)
            parts.append(payload)
        data = b"".join(parts)
        total = sum(count for _p, count in payloads)
        self.sent += total
        queue = client._out_packet  # noqa: SLF001
        written = 0
        if not queue and type(sock) is socket.socket:
            try:
                written = sock.send(data)
            except BlockingIOError:
                pass
            except OSError:  # closed under us: paho's thread reports the loss
                self.sent -= total
                return False
            if written == len(data):
                self._last = _published
                return True
        mid = client._mid_generate()  # noqa: SLF001
        info = paho.MQTTMessageInfo(mid)
        info.rc = paho.MQTT_ERR_SUCCESS
        self._last = info
        if len(self._packed) > 4096:  # forget writes no longer queued
            self._packed = {p["mid"]: self._packed.get(p["mid"], 1) for p in queue}
        if not written:
            self._packed[mid] = total
            client._packet_queue(_PUBLISH, data, mid, 0, info)  # noqa: SLF001
            return True
        end = 0  # events of the packets not (fully) written: what a disconnect would lose
        unwritten = total
        for payload, count in payloads:
            end += len(_header(size + len(payload))) + size + len(payload)
            if end > written:
                break
            unwritten -= count
        self._packed[mid] = unwritten
        rest = data[written:]  # a packet cut in two: its tail must go out first
        queue.appendleft({"command": _PUBLISH, "mid": mid, "qos": 0, "pos": 0,
                          "to_process": len(rest), "packet": rest, "info": info})  # fmt: skip
        wake = client._sockpairW  # noqa: SLF001
        if wake is not None:
            try:
                wake.send(b"0")
            except BlockingIOError:
                pass
        return True

    def _hold(self, payloads: list[tuple[bytes, int]]) -> None:
        """Buffer *payloads* while disconnected (lock held); count and drop past the limit."""
        room = self.buffer_limit - len(self._buffer)
        keep, lose = payloads[: max(room, 0)], payloads[max(room, 0) :]
        self._buffer.extend(keep)
        self.queued_while_disconnected += sum(c for _p, c in keep)
        if lose:
            lost = sum(c for _p, c in lose)
            self.dropped += lost
            if self.dropped == lost or self.dropped % 10_000 < lost:
                logger.warning("mqtt sink %r: disconnected and buffer full (%d messages); "
                               "%d event(s) dropped so far", self.config.name,
                               self.buffer_limit, self.dropped)  # fmt: skip

    def send(self, events: Sequence[Event]) -> None:
        """Serialise and publish *events* (engine thread; never raises on connection loss)."""
        if not events:
            return
        self._send_payloads(self._payloads(events))

    def send_batch(self, batch: ColumnarBatch) -> None:
        """Publish the rows of *batch*, serialised straight from its columns.

        The same messages, byte for byte, as :meth:`send` of the batch's events
        (:func:`~varpulis.connectors.base.batch_payloads`).
        """
        texts = batch_payloads(batch)
        if not texts:
            return
        size = self.batch_size
        if size == 1:
            payloads = [(t.encode(), 1) for t in texts]
        else:
            payloads = []
            for i in range(0, len(texts), size):
                chunk = texts[i : i + size]
                payloads.append((("[" + ",".join(chunk) + "]").encode(), len(chunk)))
        self._send_payloads(payloads)

    def _send_payloads(self, payloads: list[tuple[bytes, int]]) -> None:
        if _pending.depth:
            held = _pending.sinks.get(self)
            if held is None:
                _pending.sinks[self] = payloads
            else:
                held.extend(payloads)
            return
        with self._lock:
            if not self.connected:
                self._hold(payloads)
                return
            if self._fast:
                if self._publish_packed(payloads):
                    return
                self._hold(payloads)
                return
            for i, (payload, count) in enumerate(payloads):
                if not self._publish_one(payload, count):
                    self._hold(payloads[i:])
                    return

    @property
    def buffered(self) -> int:
        """Messages held by this sink while disconnected, not yet handed to paho."""
        return len(self._buffer)

    @property
    def unacknowledged(self) -> int:
        """QoS 1/2 messages paho holds until the broker acknowledges them (0 at QoS 0)."""
        return len(getattr(self.client, "_out_messages", ())) if self.qos else 0

    def flush(self, timeout: float | None = None) -> bool:
        """Wait (≤ *timeout*, default ``flush_timeout``) until all is written/acknowledged.

        Returns True when nothing is pending; otherwise logs a warning naming
        what is still pending and returns False (nothing is discarded).
        """
        deadline = time.monotonic() + (self.flush_timeout if timeout is None else timeout)
        while self._buffer and time.monotonic() < deadline:
            time.sleep(0.005)
        last = self._last
        while last is not None and not last.is_published() and time.monotonic() < deadline:
            if not self.connected and last.rc == paho.MQTT_ERR_NO_CONN and self.qos == 0:
                break
            last.wait_for_publish(min(0.05, max(0.0, deadline - time.monotonic())))
        pending_out = last is not None and not last.is_published() and last.rc == 0
        if self._buffer or pending_out:
            logger.warning("mqtt sink %r: flush timed out: %d message(s) buffered while "
                           "disconnected, last publish %s", self.config.name, len(self._buffer),
                           "pending" if pending_out else "done")  # fmt: skip
            return False
        return True

    def close(self) -> None:
        """Flush (bounded), disconnect and stop paho's thread; idempotent."""
        if self.closed:
            return
        super().close()
        client = self.client
        client.on_disconnect = None
        if self._buffer:
            self.dropped += sum(c for _p, c in self._buffer)
            logger.warning("mqtt sink %r: closed while disconnected; %d message(s) dropped",
                           self.config.name, len(self._buffer))  # fmt: skip
            self._buffer.clear()
        client.disconnect()
        client.loop_stop()

    def metrics(self) -> dict[str, Any]:
        """Counters for the metrics endpoint (events, not messages, unless named so)."""
        return {
            "sent": self.sent,
            "dropped": self.dropped,
            "queued_while_disconnected": self.queued_while_disconnected,
            "lost_on_disconnect": self.lost_on_disconnect,
            "buffered_messages": len(self._buffer),
            "unacknowledged": self.unacknowledged,
            "reconnects": self.reconnects,
            "publish_errors": self.publish_errors,
            "connected": self.connected,
        }
