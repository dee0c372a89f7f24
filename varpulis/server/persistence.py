"""Persist a worker's deployed pipelines in ``--state-dir`` and read them back at start.

One file, ``DIR/pipelines.json``: ``{"version": 1, "pipelines": [{id, name, source,
deployed_at_ns}, ...]}``. A save writes a temporary file in the same directory,
fsyncs it, renames it over the old one and fsyncs the directory, so after a crash
(even kill -9 mid-write) the file is either the old or the new complete version,
never partial. Stray temporary files from a crash are removed at load. A
:class:`StateStore` is not locked itself: the caller serialises saves (the
pipeline manager does).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["STATE_FILE", "StateStore"]

logger = logging.getLogger(__name__)

STATE_FILE = "pipelines.json"
_VERSION = 1
_TMP_PREFIX = ".pipelines-"


class StateStore:
    """Reads and atomically writes the pipeline records in *directory* (created if missing)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / STATE_FILE

    def load(self) -> list[dict[str, Any]]:
        """The saved records; [] when there is no file. An unreadable file is logged, not fatal.

        An unreadable file cannot come from :meth:`save`; if one is found
        (edited by hand, disk error) it is renamed aside (``.corrupt``) so the
        next save does not destroy the evidence.
        """
        for stray in self.directory.glob(f"{_TMP_PREFIX}*"):
            stray.unlink(missing_ok=True)
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            data = json.loads(raw)
            records = data["pipelines"]
            if not isinstance(records, list):
                message = '"pipelines" is not a list'
                raise TypeError(message)
        except (ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_suffix(".json.corrupt")
            os.replace(self.path, aside)
            logger.error("state file %s is unreadable (%s); moved to %s", self.path, exc, aside)
            return []
        return [r for r in records if isinstance(r, dict)]

    def save(self, records: list[dict[str, Any]]) -> None:
        """Replace the saved records with *records*, atomically and durably."""
        payload = json.dumps({"version": _VERSION, "pipelines": records}, indent=1).encode()
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        # The rename is durable only once the directory entry is on disk.
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
