"""AST → JSON-able data, for ``varpulis parse`` and tools."""

from __future__ import annotations

import dataclasses
from typing import Any

from varpulis.lang import ast

__all__ = ["to_data"]


def to_data(node: Any, *, spans: bool = False) -> Any:
    """Return *node* as plain dicts/lists: ``{"node": "StreamDecl", "name": ...}``.

    With *spans*, each node also carries ``"span": [start, end]``.
    """
    if isinstance(node, ast.Program):
        return {"node": "Program", "decls": [to_data(d, spans=spans) for d in node.decls]}
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        out: dict[str, Any] = {"node": type(node).__name__}
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if f.name == "span":
                if spans:
                    out["span"] = [value.start, value.end]
                continue
            out[f.name] = to_data(value, spans=spans)
        return out
    if isinstance(node, tuple):
        return [to_data(item, spans=spans) for item in node]
    return node
