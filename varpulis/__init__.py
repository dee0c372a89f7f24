"""Varpulis: a streaming complex-event-processing engine and its VPL language."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.6.0"
