"""The ``file`` connector: JSON lines appended to ``path`` (default ``<name>.jsonl``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from varpulis.connectors.base import ConnectorConfig, Sink, batch_payloads
from varpulis.connectors.registry import register_sink
from varpulis.events import Event, dumps_sink

if TYPE_CHECKING:
    from kernels.columnar import ColumnarBatch

__all__ = ["FileSink"]


@register_sink("file")
class FileSink(Sink):
    """Appends one sink payload per line; the file is opened on first use."""

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__(config)
        self.path = Path(str(config.params.get("path", f"{config.name}.jsonl")))
        self._fh = None

    def send(self, events: Sequence[Event]) -> None:
        self._write("".join(dumps_sink(e) + "\n" for e in events), len(events))

    def send_batch(self, batch: ColumnarBatch) -> None:
        """Append one line per row, serialised straight from the columns (same bytes)."""
        texts = batch_payloads(batch)
        self._write("".join(t + "\n" for t in texts), len(texts))

    def _write(self, text: str, count: int) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")
        self._fh.write(text)
        self.sent += count

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        super().close()
        if self._fh is not None:
            self._fh.close()
            self._fh = None
