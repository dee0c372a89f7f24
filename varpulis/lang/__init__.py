"""The VPL front end: text → AST (:func:`parse`), and checks (:func:`validate`)."""

from __future__ import annotations

from varpulis.lang.parser import parse, parse_file

__all__ = ["parse", "parse_file"]
