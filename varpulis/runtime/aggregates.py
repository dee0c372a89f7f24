"""Aggregates: turn a window's batch of events into one result (``.aggregate(...)``).

:func:`compile_aggregate` compiles ``.aggregate(alias: item, ...)`` once into
``aggregate(events, key) -> dict``, a generated Python function that walks the
batch **once**, evaluating each distinct argument expression once per event
(with :func:`~varpulis.compiler.exprs.compile_expr` callables; a bare field name
is read inline) and updating every aggregate's state together. Results
(DESIGN §4.1.11): ``count()`` counts events; ``count(x)`` events where ``x`` is
present and not null; ``sum`` (empty → 0.0), ``avg``, ``min``, ``max``,
``stddev`` (sample, n−1) and ``ema(x, p)`` are floats over the int/float values
of their expression (missing, null, bools, strings and NaN skipped; no value →
None, ``stddev`` needs two), summed left to right; ``first``/``last`` give the
raw value of the first/last event where it is present (null counts as present);
``count(distinct(x))``/``count_distinct(x)`` count the distinct present values,
compared as VPL values (:func:`distinct_key`); ``+ - * /`` combine aggregates
and number literals with VPL arithmetic, None when an operand is not a number
or on division by zero. The result dict holds the aliases in written order,
after ``_partition`` and the partition field when the stream is partitioned.
The batch is only read; each compiled aggregate owns an
:class:`~varpulis.compiler.evalctx.EvalContext` and belongs to one engine thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import Any

from varpulis.compiler import values as V
from varpulis.compiler.evalctx import EvalContext
from varpulis.compiler.exprs import compile_expr
from varpulis.compiler.scope import Scope, check_identifier
from varpulis.compiler.values import MISSING
from varpulis.errors import VPLRuntimeError, VPLSemanticError
from varpulis.events import Event
from varpulis.lang import ast
from varpulis.lang.hints import did_you_mean

__all__ = [
    "AGGREGATE_FUNCTIONS",
    "DEFAULT_EMA_PERIOD",
    "ITEM_OPS",
    "Aggregate",
    "compile_aggregate",
    "distinct_key",
    "item_neg",
    "partition_name",
]

#: What ``.aggregate(...)`` items may call (``count(distinct(x))`` is ``count_distinct(x)``).
AGGREGATE_FUNCTIONS = (
    "count", "count_distinct", "sum", "avg", "min", "max", "stddev", "first", "last", "ema",
)  # fmt: skip
#: ``ema(x)`` without a period uses this one.
DEFAULT_EMA_PERIOD = 12

#: ``aggregate(events, key) -> fields``: *key* is the partition value (MISSING
#: when the events lack the field), ignored when the stream is not partitioned.
Aggregate = Callable[[list[Event], Any], dict[str, Any]]

_HINT = (
    "use count(), count(x), sum(x), avg(x), min(x), max(x), stddev(x), first(x), last(x), "
    "count_distinct(x) or ema(x, period), and + - * / between them"
)


# ------------------------------------------------------------- value identity

# Markers that keep structured keys apart from every scalar VPL value.
_BOOL, _LIST, _MAP, _NAN, _OTHER = (object() for _ in range(5))


def distinct_key(value: Any) -> Hashable:
    """A hashable identity of a VPL value: equal keys for equal values.

    Values that VPL ``==`` calls equal share a key (``1`` and ``1.0``; arrays
    and maps compared element by element), ``true`` differs from ``1`` (a bool
    is not a number), null and MISSING are keys of their own, and every NaN is
    the same key (unlike ``==``, so that NaNs count once). Used for
    ``count_distinct`` and for partition keys.
    """
    t = type(value)
    if t is str or t is int or value is None or value is MISSING:
        return value
    if t is float:
        return value if value == value else _NAN
    if t is bool:
        return (_BOOL, value)
    if t is list:
        return (_LIST, tuple(map(distinct_key, value)))
    if t is dict:
        return (_MAP, frozenset((k, distinct_key(v)) for k, v in value.items()))
    try:
        hash(value)
    except TypeError:
        return (_OTHER, repr(value))
    return value


def partition_name(key: Any) -> str:
    """The ``_partition`` string of a partition value.

    A string as it is, an int in decimal, a float as its ``repr``, ``true``/
    ``false``, ``null``, arrays and maps in display form; MISSING (the events
    have no such field) gives ``"default"``, as in the original.
    """
    t = type(key)
    if t is str:
        return key
    if key is MISSING:
        return "default"
    if t is float:
        return repr(key)
    return V.display(key)


# ------------------------------------------------------------- arithmetic


def _numeric(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def combine(a: Any, b: Any) -> Any:
        ta, tb = type(a), type(b)
        if (ta is int or ta is float) and (tb is int or tb is float):
            return op(a, b)  # VPL rules: int/int truncates, x / 0 is None
        return None

    return combine


def _neg(a: Any) -> Any:
    t = type(a)
    return -a if t is int or t is float else None


#: How aggregate items combine (``+ - * /`` on two numbers, else None) and negate:
#: the generated code's helpers, shared with the columnar kernel (window_batch.py).
ITEM_OPS = {"+": _numeric(V.op_add), "-": _numeric(V.op_sub), "*": _numeric(V.op_mul),
            "/": _numeric(V.op_div)}  # fmt: skip
item_neg = _neg


def _overflow(exc: OverflowError) -> VPLRuntimeError:
    message = f"aggregate overflow (an integer too large for a float?): {exc}"
    return VPLRuntimeError(message)


_ARITH = {"+": "_add", "-": "_sub", "*": "_mul", "/": "_div"}
_RUNTIME: dict[str, Any] = {
    "_M": MISSING, "_INF": math.inf, "_key": distinct_key, "_pname": partition_name,
    "_sqrt": math.sqrt, "_overflow": _overflow, "_neg": _neg,
    "_add": ITEM_OPS["+"], "_sub": ITEM_OPS["-"], "_mul": ITEM_OPS["*"],
    "_div": ITEM_OPS["/"], "_NUM": frozenset({int, float}),
}  # fmt: skip
# VPL + - * on two numbers are Python's (no overflow on ints; floats raise as Python does).
_INLINE = frozenset({"+", "-", "*"})

# What each aggregate returns, from the state variables of its argument ``i``.
_RESULT = {
    "sum": "s{i}",
    "avg": "(s{i} / n{i} if n{i} else None)",
    "min": "(float(lo{i}) if n{i} else None)",
    "max": "(float(hi{i}) if n{i} else None)",
    "stddev": "(_sqrt(q{i} / (n{i} - 1)) if n{i} > 1 else None)",
    "first": "(None if f{i} is _M else f{i})",
    "last": "(None if l{i} is _M else l{i})",
    "count": "c{i}",
    "distinct": "len(d{i})",
}
_NUMERIC = frozenset({"sum", "avg", "min", "max", "stddev", "ema"})


# ------------------------------------------------------------- compiler


class _Compiler:
    """Collects the distinct argument expressions and what each must compute."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.index: dict[str, int] = {}  # repr of an argument's AST -> its number
        self.needs: list[set[str]] = []
        self.emas: list[dict[float, int]] = []  # per argument: period -> ema number
        self.ns: dict[str, Any] = dict(_RUNTIME)
        self.calls = False  # some argument runs compiled code, which reads ctx.event
        self.inline: dict[int, str] = {}  # argument -> its + - * of two fields, inlined

    def error(self, message: str, node: Any, hint: str | None = None) -> VPLSemanticError:
        return self.scope.error(message, node, hint)

    def arg(self, node: Any, need: str) -> int:
        # repr, not ==, tells arguments apart: Literal(1) == Literal(1.0) == Literal(True).
        key = repr(node)
        i = self.index.get(key)
        if i is None:
            i = self.index[key] = len(self.needs)
            self.needs.append(set())
            self.emas.append({})
            if isinstance(node, ast.Name) and not self.scope.is_constant(node.id):
                if not check_identifier(node.id):
                    message = f"invalid name {node.id!r}"
                    raise self.error(message, node)
                self.ns[f"_f{i}"] = node.id  # read inline: saves a call per event
            else:
                self.ns[f"_a{i}"] = compile_expr(node, self.scope)
                self.calls = True
                if (
                    isinstance(node, ast.Binary)
                    and node.op in _INLINE
                    and all(self._field(side) for side in (node.left, node.right))
                ):
                    # number op number inline; any other operand runs _a{i} (same result)
                    self.ns[f"_l{i}"], self.ns[f"_r{i}"] = node.left.id, node.right.id
                    self.inline[i] = node.op
        self.needs[i].add(need)
        return i

    def _field(self, node: Any) -> bool:
        return (
            isinstance(node, ast.Name)
            and not self.scope.is_constant(node.id)
            and check_identifier(node.id)
        )

    def const(self, value: Any) -> str:
        name = f"_c{len(self.ns)}"
        self.ns[name] = value
        return name

    def item(self, node: Any) -> str:
        """Python source for the value of the aggregate item *node*."""
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Binary) and node.op in _ARITH:
            return f"{_ARITH[node.op]}({self.item(node.left)}, {self.item(node.right)})"
        if isinstance(node, ast.Unary) and node.op == "-":
            return f"_neg({self.item(node.operand)})"
        if isinstance(node, ast.Literal) and type(node.value) in (int, float):
            return self.const(node.value)
        if isinstance(node, ast.Name):
            what = f"the bare name {node.id!r}"
            hint = f"use last({node.id}) or first({node.id}) for its value in the batch"
        elif isinstance(node, ast.Literal):
            value = node.value
            text = f'"{value}"' if isinstance(value, str) else V.display(value)
            what = f"the literal {text}"
            hint = "only number literals combine with aggregates"
        else:
            what, hint = f"a {type(node).__name__} expression", _HINT
        message = (
            f"an aggregate item must be an aggregate function such as sum(price), "
            f"or + - * / of them, not {what}"
        )
        raise self.error(message, node, hint)

    def call(self, node: ast.Call) -> str:
        func, args = node.func, node.args
        if func not in AGGREGATE_FUNCTIONS:
            if func == "distinct":
                message = "distinct(x) only works inside count(distinct(x))"
                raise self.error(message, node, "write count(distinct(x)) or count_distinct(x)")
            message = f"unknown aggregate function {func!r}"
            raise self.error(message, node, did_you_mean(func, AGGREGATE_FUNCTIONS) or _HINT)
        if node.kwargs:
            message = f"{func}() takes no keyword arguments"
            raise self.error(message, node)
        if func == "count" and not args:
            return "_n"
        if func == "count" and len(args) == 1:
            inner = args[0]
            if not (isinstance(inner, ast.Call) and inner.func == "distinct"):
                return _RESULT["count"].format(i=self.arg(inner, "count"))
            if len(inner.args) != 1 or inner.kwargs:
                message = f"distinct() takes one expression, got {len(inner.args)}"
                raise self.error(message, inner)
            func, args = "count_distinct", inner.args
        if func == "ema" and len(args) in (1, 2):
            period = DEFAULT_EMA_PERIOD if len(args) == 1 else self.period(args[1])
            i = self.arg(args[0], "ema")
            j = self.emas[i].setdefault(period, len(self.emas[i]))
            return f"(e{i}_{j} if n{i} else None)"
        if len(args) != 1 or func in ("count", "ema"):
            want = {"count": "0 or 1 arguments", "ema": "1 or 2 arguments"}.get(func, "1 argument")
            message = f"{func}() takes {want}, got {len(args)}"
            raise self.error(message, node, _HINT)
        need = "distinct" if func == "count_distinct" else func
        return _RESULT[need].format(i=self.arg(args[0], need))

    def period(self, node: Any) -> float:
        value = node.value if isinstance(node, ast.Literal) else None
        if type(value) in (int, float) and 0 < value < math.inf:
            return value
        message = "ema() period must be a positive number literal"
        raise self.error(message, node, "for example ema(price, 12)")

    # ---------------------------------------------------------- code

    def loop_body(self) -> tuple[list[str], list[str]]:
        """(state initialisation, per-event statements) for every argument."""
        init: list[str] = []
        body: list[str] = []
        for i, needs in enumerate(self.needs):
            inner: list[str] = []
            if "first" in needs:
                init.append(f"f{i} = _M")
                inner += [f"if f{i} is _M:", f"    f{i} = x"]
            if "last" in needs:
                init.append(f"l{i} = _M")
                inner.append(f"l{i} = x")
            if "count" in needs:
                init.append(f"c{i} = 0")
                inner += ["if x is not None:", f"    c{i} += 1"]
            if "distinct" in needs:
                init.append(f"d{i} = set()")
                inner.append(f"d{i}.add(x if type(x) is str else _key(x))")
            if needs & _NUMERIC:
                init.append(f"n{i} = 0")
                num = [f"n{i} += 1"]
                if needs & {"sum", "avg"}:
                    init.append(f"s{i} = 0.0")
                    num.append(f"s{i} += x")  # left to right: reproducible bits
                if "min" in needs:
                    init.append(f"lo{i} = _INF")
                    num += [f"if x < lo{i}:", f"    lo{i} = x"]
                if "max" in needs:
                    init.append(f"hi{i} = -_INF")
                    num += [f"if x > hi{i}:", f"    hi{i} = x"]
                if "stddev" in needs:  # Welford: stable, one pass
                    init += [f"mu{i} = 0.0", f"q{i} = 0.0"]
                    num += [f"dx = x - mu{i}", f"mu{i} += dx / n{i}", f"q{i} += dx * (x - mu{i})"]
                for period, j in self.emas[i].items():
                    k = 2.0 / (period + 1.0)
                    a, b = self.const(k), self.const(1.0 - k)
                    init.append(f"e{i}_{j} = 0.0")
                    num.append(f"e{i}_{j} = float(x) if n{i} == 1 else {a} * x + {b} * e{i}_{j}")
                # NaN != NaN: skipped like the original; bools are not numbers.
                inner += ["t = type(x)", "if t is int or (t is float and x == x):"]
                inner += _indent(num)
            if i in self.inline:
                body += [
                    f"x = fields.get(_l{i}, _M)",
                    f"y = fields.get(_r{i}, _M)",
                    "if type(x) in _NUM and type(y) in _NUM:",
                    "    try:",
                    f"        x = x {self.inline[i]} y",
                    "    except ArithmeticError:",  # the compiled code's own error
                    f"        x = _a{i}(fields, ctx)",
                    "else:",
                    f"    x = _a{i}(fields, ctx)",
                ]
            else:
                read = f"fields.get(_f{i}, _M)" if f"_f{i}" in self.ns else f"_a{i}(fields, ctx)"
                body.append(f"x = {read}")
            body += ["if x is not _M:", *_indent(inner)]
        return init, body

    def source(self, results: list[tuple[str, str]], partition_field: str | None) -> str:
        init, body = self.loop_body()
        lines = ["def _aggregate(events, key):"]
        if self.calls:
            lines.append("    ctx = _ctx")
        lines += _indent(init)
        lines.append("    try:")
        if body:
            lines.append("        for ev in events:")
            lines.append("            fields = ev.fields")
            if self.calls:
                lines.append("            ctx.event = ev")
            lines += _indent(body, 12)
        lines.append("        _n = len(events)")
        lines += [f"        r{n} = {expr}" for n, (_, expr) in enumerate(results)]
        lines += ["    except OverflowError as exc:", "        raise _overflow(exc) from None"]
        items = ", ".join(f"{alias!r}: r{n}" for n, (alias, _) in enumerate(results))
        if partition_field is None:
            lines.append(f"    return {{{items}}}")
        else:
            field = f"{partition_field!r}: key"
            lines.append("    if key is _M:")
            lines.append(f"        return {{'_partition': 'default', {items}}}")
            lines.append(f"    return {{'_partition': _pname(key), {field}, {items}}}")
        return "\n".join(lines) + "\n"


def _indent(lines: list[str], by: int = 4) -> list[str]:
    pad = " " * by
    return [pad + line for line in lines]


def compile_aggregate(
    op: ast.Op, scope: Scope, partition_field: str | None = None
) -> Callable[[list[Event], Any], dict[str, Any]]:
    """Compile ``.aggregate(alias: item, ...)`` (*op*) into ``aggregate(events, key)``.

    The result is a new dict per call: when *partition_field* is given it
    starts with ``_partition`` (:func:`partition_name` of *key*) and the
    partition field itself (*key*; left out when *key* is MISSING), then the
    aliases in written order (an alias equal to one of those two names
    replaces its value in place). Argument expressions are compiled with
    *scope*; their runtime errors propagate as
    :class:`~varpulis.errors.VPLRuntimeError`, as does an int too large to sum
    as a float. A missing alias, a repeated alias, an unknown function (with a
    did-you-mean), a wrong arity or an item that is not an aggregate raises
    :class:`~varpulis.errors.VPLSemanticError` at the offending node. The
    generated source is on the callable's ``vpl_source`` attribute.
    """
    if op.args or not op.kwargs:
        message = ".aggregate() takes alias: function(...) items, e.g. .aggregate(n: count())"
        raise scope.error(message, op.args[0] if op.args else op, _HINT)
    if partition_field is not None and not check_identifier(partition_field):
        message = f"invalid partition field {partition_field!r}"
        raise scope.error(message, op)
    compiler = _Compiler(scope)
    results: list[tuple[str, str]] = []
    seen: set[str] = set()
    for alias, node in op.kwargs:
        if not check_identifier(alias) or alias in seen:
            problem = "used twice" if alias in seen else "not a valid name"
            message = f"aggregate alias {alias!r} is {problem}"
            raise scope.error(message, node)
        seen.add(alias)
        results.append((alias, compiler.item(node)))
    namespace = compiler.ns
    if compiler.calls:
        namespace["_ctx"] = EvalContext(None)
    text = compiler.source(results, partition_field)
    exec(compile(text, "<vpl aggregate>", "exec"), namespace)  # generated, never user text
    fn = namespace["_aggregate"]
    fn.vpl_source = text
    return fn
