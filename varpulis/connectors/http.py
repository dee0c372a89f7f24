"""The ``http`` sink: POST each event's sink payload (or JSON arrays) to a webhook URL.

Threads: :meth:`HttpSink.send` runs on the engine's thread and POSTs
synchronously through one keep-alive ``requests.Session`` (this *is* the
backpressure: the engine waits for the endpoint). One request per event by
default, ``Content-Type: application/json``; with ``batch_size: N`` one
request per N events carrying a JSON array. A request that fails (connection
error, timeout, 5xx or 429) is retried ``retries`` times with exponential
backoff from ``backoff`` seconds (capped at ``backoff_max``); a request that
still fails, or gets another 4xx, counts its events in ``dropped`` and
``failures`` with a warning. Nothing is buffered between calls and nothing
raises into the engine. ``method:`` is ignored (always POST), as in the original.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests

from varpulis.connectors.base import ConnectorConfig, Sink, number_param
from varpulis.connectors.registry import register_sink
from varpulis.errors import VarpulisError
from varpulis.events import Event, dumps_sink

__all__ = ["HttpConfigError", "HttpSink"]

logger = logging.getLogger("varpulis.connectors.http")

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class HttpConfigError(VarpulisError):
    """A parameter of an ``http`` connector is invalid."""

    code, http_status = "invalid_connector", 400


def _number(params: dict[str, Any], key: str, default: float, cast: Callable[[Any], Any]) -> Any:
    return number_param(params, key, default, cast, HttpConfigError, what="http connector")


@register_sink("http")
class HttpSink(Sink):
    """POSTs sink payloads to ``url`` with retries (see the module doc).

    Params: ``url`` (required), ``batch_size`` (1), ``timeout`` (5 s per
    request), ``retries`` (3), ``backoff`` (0.1 s, doubled per retry),
    ``backoff_max`` (5 s), ``headers`` (a dict, optional).
    """

    def __init__(self, config: ConnectorConfig, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
        super().__init__(config)
        params = config.params
        url = params.get("url") or params.get("host")
        if not url:
            msg = f'http connector {config.name!r}: missing url (e.g. url: "http://host/hook")'
            raise HttpConfigError(msg)
        self.url = str(url)
        self.batch_size = max(1, int(_number(params, "batch_size", 1, int)))
        self.timeout = float(_number(params, "timeout", 5.0, float))
        self.retries = int(_number(params, "retries", 3, int))
        self.backoff = float(_number(params, "backoff", 0.1, float))
        self.backoff_max = float(_number(params, "backoff_max", 5.0, float))
        self.failures = 0  # requests given up on
        self.retried = 0  # attempts after the first
        self._sleep = sleep
        self.session = requests.Session()
        self.session.headers["Content-Type"] = "application/json"
        extra = params.get("headers")
        if isinstance(extra, dict):
            self.session.headers.update({str(k): str(v) for k, v in extra.items()})

    def _bodies(self, events: Sequence[Event]) -> list[tuple[bytes, int]]:
        if self.batch_size == 1:
            return [(dumps_sink(e).encode(), 1) for e in events]
        size = self.batch_size
        return [
            (("[" + ",".join(dumps_sink(e) for e in events[i : i + size]) + "]").encode(),
             len(events[i : i + size]))
            for i in range(0, len(events), size)
        ]  # fmt: skip

    def _post(self, body: bytes) -> str | None:
        """POST *body* with retries; None on success, else why it failed."""
        delay = self.backoff
        why = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                self._sleep(delay)
                delay = min(delay * 2, self.backoff_max)
            try:
                response = self.session.post(self.url, data=body, timeout=self.timeout)
            except requests.RequestException as exc:
                why = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code < 300:
                return None
            why = f"HTTP {response.status_code}"
            if response.status_code not in _RETRY_STATUS:
                return why
        return why

    def send(self, events: Sequence[Event]) -> None:
        """POST *events* (engine thread; blocks during retries; never raises)."""
        for body, count in self._bodies(events):
            why = self._post(body)
            if why is None:
                self.sent += count
                continue
            self.failures += 1
            self.dropped += count
            if self.failures <= 10 or self.failures % 100 == 0:
                logger.warning("http sink %r: POST %s failed (%s); %d event(s) dropped so far",
                               self.config.name, self.url, why, self.dropped)  # fmt: skip

    def close(self) -> None:
        """Close the session; idempotent."""
        if not self.closed:
            super().close()
            self.session.close()

    def metrics(self) -> dict[str, Any]:
        """Counters: events sent/dropped, requests failed, retries made."""
        return {"sent": self.sent, "dropped": self.dropped, "failures": self.failures,
                "retries": self.retried}  # fmt: skip
