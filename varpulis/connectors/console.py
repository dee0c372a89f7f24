"""The ``console`` connector: one line per event on standard output."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from varpulis.connectors.base import ConnectorConfig, Sink
from varpulis.connectors.registry import register_sink
from varpulis.events import Event, dumps_sink

__all__ = ["ConsoleSink"]


@register_sink("console")
class ConsoleSink(Sink):
    """Prints each event's sink payload (compact JSON) on its own line."""

    def __init__(self, config: ConnectorConfig, stream: TextIO | None = None) -> None:
        super().__init__(config)
        self.stream = stream

    def send(self, events: Sequence[Event]) -> None:
        out = self.stream or sys.stdout
        out.write("".join(dumps_sink(e) + "\n" for e in events))
        self.sent += len(events)

    def flush(self) -> None:
        (self.stream or sys.stdout).flush()
