"""What the language defines by name: stream operations, builtins, aggregates.

These tables are facts about VPL (the validator checks programs against
them); ``varpulis.compiler`` implements each name, and a test keeps the two in
step. Arity is ``(min, max)`` positional arguments, ``max`` None for "any".
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AGGREGATES", "BUILTINS", "OPERATIONS", "OpSig"]


@dataclass(frozen=True, slots=True)
class OpSig:
    """Signature of a stream operation ``.name(...)``.

    ``kwargs`` lists the accepted keyword names (None: any name, e.g.
    ``.emit(field: expr)``); ``needs`` names an operation that must come first.
    """

    min_args: int = 0
    max_args: int | None = 0
    kwargs: frozenset[str] | None = frozenset()
    needs: str | None = None
    summary: str = ""


def _kw(*names: str) -> frozenset[str]:
    return frozenset(names)


OPERATIONS: dict[str, OpSig] = {
    "where": OpSig(1, 1, summary="keep events whose condition is true"),
    "select": OpSig(0, None, None, summary="keep (and compute) only the listed fields"),
    "emit": OpSig(0, 0, None, summary="produce an output event typed by the stream name"),
    "process": OpSig(1, 1, summary="call a fn that emits events"),
    "to": OpSig(1, 1, None, summary="send the current events to a connector"),
    "from": OpSig(1, 1, None, summary="read events from a connector"),
    "context": OpSig(1, 1, summary="run the stream in a declared context"),
    "window": OpSig(0, 1, _kw("sliding", "session", "policy"), summary="buffer events"),
    "aggregate": OpSig(0, 0, None, summary="aggregate a window into one event"),
    "partition_by": OpSig(1, 1, summary="isolate windows/sequences per key"),
    "having": OpSig(1, 1, needs="aggregate", summary="filter aggregate results"),
    "tap": OpSig(0, None, None, summary="observe events without changing them"),
    "log": OpSig(0, 0, _kw("level", "message", "data"), summary="log each event"),
    "print": OpSig(0, None, summary="print values of each event"),
    "watermark": OpSig(0, 0, _kw("out_of_order"), summary="event-time watermark"),
    "allowed_lateness": OpSig(1, 1, summary="accept late events up to a duration"),
    "within": OpSig(1, 1, summary="time limit of a sequence"),
    "on": OpSig(1, 1, summary="join condition"),
    "distinct": OpSig(0, 1, summary="drop repeated events (or keys)"),
    "limit": OpSig(1, 1, summary="pass the first N events"),
    "first": OpSig(0, 0, summary="pass the first event only"),
}

#: Builtin functions and their arity (positional; keyword arguments are not accepted).
BUILTINS: dict[str, tuple[int, int | None]] = {
    **{name: (1, 1) for name in (
        "abs", "sqrt", "log", "log10", "exp", "sin", "cos", "tan", "floor", "ceil",
        "len", "first", "last", "pop", "reverse", "sort", "keys", "values", "sum", "avg",
        "to_string", "to_int", "to_float", "trim", "lower", "lowercase", "upper", "uppercase",
        "type_of", "is_null", "is_int", "is_float", "is_string", "is_bool", "is_array", "is_map",
        "is_missing", "is_number", "round",
    )},
    "pow": (2, 2),
    "min": (2, None),
    "max": (2, None),
    "push": (2, 2),
    "contains": (2, 2),
    "get": (2, 3),
    "set": (3, 3),
    "range": (1, 3),
    "split": (2, 2),
    "join": (1, 2),
    "replace": (3, 3),
    "starts_with": (2, 2),
    "ends_with": (2, 2),
    "substring": (2, 3),
    "coalesce": (1, None),
    "clamp": (3, 3),
    "concat": (0, None),
    "now": (0, 0),
}  # fmt: skip

#: Aggregate functions usable inside ``.aggregate(...)`` and their arity.
AGGREGATES: dict[str, tuple[int, int]] = {
    "count": (0, 1),
    "sum": (1, 1),
    "avg": (1, 1),
    "min": (1, 1),
    "max": (1, 1),
    "stddev": (1, 1),
    "first": (1, 1),
    "last": (1, 1),
    "count_distinct": (1, 1),
    "ema": (1, 2),
}
