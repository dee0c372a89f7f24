"""Count-window aggregates over columns: the stateful kernel of ``.window(N).aggregate(...)``.

:func:`build` returns a :class:`WindowKernel` (a :class:`~varpulis.runtime.blocks.Stateful`)
for a stream of the shape::

    stream S = T [.where(p)] [.partition_by(k)] .window(N) .aggregate(alias: item, ...)
                 [.where/.select/.emit]

when it reads one event type that no other stream reads, has no entry, and
nothing reads it in turn. Items are ``count() count(x) sum avg min max first
last`` of field expressions (literals, fields, ``+ - * /``, unary ``-``), and
``+ - * /`` and ``-`` between those and number literals; the filters before
the window and the operations after the aggregate must lower with
:func:`~varpulis.compiler.batch.compile_chain`.

``WindowKernel.run(block)`` takes rows of the stream's event type only (the
caller's split; not checked) and gives exactly the outputs and counters
per-event processing gives: the rows the filters keep are grouped by
partition in arrival order, counting the carried rows first; every N-th row
of a partition closes a window; each closed window's rows are reduced with
numpy and the outputs come ordered by the row that closed each window, with
that row's timestamp. Exactness:

* ``sum``/``avg`` add left to right from ``0.0`` as the generated scalar code
  does (so a sum of ints is a float, as per event): the values of the closed
  windows form a ``[windows, N]`` matrix whose first column gets ``+ 0.0``
  (``0.0 + -0.0`` is ``0.0``) and which is then accumulated along its rows
  (``np.add.accumulate`` is sequential: element ``j`` is element ``j - 1``
  plus value ``j``; no pairwise summation), so every partial sum is the same
  IEEE operation on the same operands. Ints are converted to float64 first,
  as ``float + int`` converts them (both round to nearest, ties to even).
* ``min``/``max`` take the first occurrence of the extreme value (``argmin``),
  as the scalar ``if x < lo`` keeps the first of equal values (``0.0``/``-0.0``).
* Argument and filter expressions run through the batch path's kernels, which
  give up wherever numpy and the scalar operators could differ (``Kernel.exact``).
* Item arithmetic runs per window on Python values with VPL's operators.

The block is declined (None, nothing changed) whenever that cannot be
guaranteed: a field the filters, the partition or the aggregate read is
missing from a row or mixes types (within the block, or against the carry),
a numeric aggregate meets a non-number or a NaN, the partition key is not all
strings or all ints, an expression is not exact, the chain after the
aggregate declines, or lateness is enabled. When per-event processing left
rows in the per-event window, the next block first takes them over as its
carry (they passed the filters already and close no window).

The carry (:class:`_Carry`) holds the rows of the open windows, in arrival
order, as typed columns of the fields the filters, the partition and the
aggregate read. Nothing else of an input event is ever observable after a
window (the aggregate replaces it), so :meth:`WindowKernel.settle` rebuilds
the per-event state exactly by replaying events made of those fields: they
pass the filters again, no open window closes, and each partition's buffer
ends with the same rows. The kernel also registers every partition key it
meets in the per-event :class:`~varpulis.runtime.windows.PartitionedWindow`,
in first-seen order, so that ``Engine.flush`` (after ``settle``) releases
partitions in the order per-event processing would. A kernel belongs to its
engine's thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from varpulis.compiler.batch import NO_OP, BatchExpr, compile_chain
from varpulis.errors import VPLRuntimeError
from varpulis.events import Event
from varpulis.lang import ast
from varpulis.runtime.aggregates import ITEM_OPS, item_neg, partition_name
from varpulis.runtime.blocks import Block, guard, replay, unguard
from varpulis.runtime.chains import BatchStream, Rows, rows_in, rows_of
from varpulis.runtime.windows import COUNT, CountWindow, PartitionedWindow

if TYPE_CHECKING:
    from varpulis.runtime.engine import Engine, _Runner

__all__ = ["WindowKernel", "build"]

_FUNCS = frozenset({"count", "sum", "avg", "min", "max", "first", "last"})
_NUMERIC = frozenset({"sum", "avg", "min", "max"})
_ARGUMENT_OPS = frozenset({"+", "-", "*", "/"})
_FILTERS = frozenset({"where", "having"})
#: Operations that may come before the window (only the filters make stages).
_BEFORE = frozenset({"partition_by", *_FILTERS, *NO_OP})


# ------------------------------------------------------------------ plan


class _Arg:
    """One distinct argument expression: a field read as it is, or a batch expression;
    ``needs`` are the aggregate functions applied to it."""

    __slots__ = ("expr", "field", "needs")

    def __init__(self, field: str | None, expr: BatchExpr | None) -> None:
        self.field, self.expr = field, expr
        self.needs: set[str] = set()

    def fields(self) -> tuple[str, ...]:
        return (self.field,) if self.field is not None else self.expr.fields  # type: ignore[union-attr]


#: An aggregate item: ``("agg", func, _Arg | None)``, ``("const", value)``,
#: ``("neg", item)`` or ``("bin", op, item, item)``.
_Item = tuple[Any, ...]


def _plain(node: Any) -> bool:
    """Whether *node* is built from literals, names, ``+ - * /`` and unary ``-`` only."""
    if isinstance(node, (ast.Literal, ast.Name)):
        return True
    if isinstance(node, ast.Unary):
        return node.op == "-" and _plain(node.operand)
    if isinstance(node, ast.Binary):
        return node.op in _ARGUMENT_OPS and _plain(node.left) and _plain(node.right)
    return False


class _Items:
    """Parses ``.aggregate(...)`` items into :data:`_Item` trees over shared arguments."""

    def __init__(self, engine: Engine) -> None:
        self.scope = engine.scope
        self.args: dict[str, _Arg] = {}  # repr of the argument's AST -> the argument

    def arg(self, node: Any) -> _Arg | None:
        key = repr(node)  # as the aggregate compiler tells arguments apart
        found = self.args.get(key)
        if found is None:
            if not _plain(node):
                return None
            if isinstance(node, ast.Name) and not self.scope.is_constant(node.id):
                found = _Arg(node.id, None)
            else:
                found = _Arg(None, BatchExpr(node, self.scope))
            self.args[key] = found
        return found

    def item(self, node: Any) -> _Item | None:
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Binary) and node.op in ITEM_OPS:
            left, right = self.item(node.left), self.item(node.right)
            if left is None or right is None:
                return None
            return ("bin", node.op, left, right)
        if isinstance(node, ast.Unary) and node.op == "-":
            inner = self.item(node.operand)
            return None if inner is None else ("neg", inner)
        if isinstance(node, ast.Literal) and type(node.value) in (int, float):
            return ("const", node.value)
        return None

    def call(self, node: ast.Call) -> _Item | None:
        func = node.func
        if func not in _FUNCS or node.kwargs:
            return None
        if func == "count" and not node.args:
            return ("agg", "count", None)
        if len(node.args) != 1:
            return None
        inner = node.args[0]
        if isinstance(inner, ast.Call):  # count(distinct(x)) and friends
            return None
        arg = self.arg(inner)
        if arg is None:
            return None
        arg.needs.add(func)
        return ("agg", func, arg)


def build(engine: Engine, runner: _Runner) -> WindowKernel | None:
    """The columnar kernel of *runner*'s count window and aggregate, or None when the
    stream is not eligible (see the module docstring). Nothing is changed either way."""
    decl = runner.decl
    source = decl.source
    if not isinstance(source, ast.EventSource) or runner.entry is not None:
        return None
    if runner.forward or runner.columnar or engine.routes.get(source.name) != [runner]:
        return None
    if any(runner in runners for name, runners in engine.routes.items() if name != source.name):
        return None
    ops = decl.ops
    if not all(isinstance(op, ast.Op) for op in ops):
        return None
    names = [op.name for op in ops]  # type: ignore[union-attr]
    if "window" not in names:
        return None
    at = names.index("window")
    if not set(names[:at]) <= _BEFORE or names[at + 1 : at + 2] != ["aggregate"]:
        return None
    wheres = [op for op in ops[:at] if op.name in _FILTERS]  # type: ignore[union-attr]
    # a chain keeps only what leads to an emit: lower the filters followed by an empty one
    lowered = compile_chain([*wheres, ast.Op("emit")], engine.scope, runner.name)  # type: ignore[list-item]
    if lowered is None or len(runner.stages) <= len(wheres):
        return None
    filters = lowered[:-1]
    stage = runner.stages[len(wheres)]  # each filter is a stage; partition_by is none
    window, spec = getattr(stage, "window", None), getattr(stage, "spec", None)
    if getattr(stage, "aggregate_op", None) is not ops[at + 1]:
        return None
    if getattr(spec, "kind", None) != COUNT:
        return None
    field = stage.partition_field  # type: ignore[union-attr]
    if type(window) is not (CountWindow if field is None else PartitionedWindow):
        return None
    steps = compile_chain(ops[at + 2 :], engine.scope, runner.name)  # type: ignore[arg-type]
    if steps is None:
        return None
    parser = _Items(engine)
    items = []
    for alias, node in ops[at + 1].kwargs:  # type: ignore[union-attr]
        item = parser.item(node)
        if item is None:
            return None
        items.append((alias, item))
    args = list(parser.args.values())
    exprs = tuple(step.expr for step in filters)
    fields = [field] if field is not None else []
    for names_read in [arg.fields() for arg in args] + [e.fields for e in exprs]:  # type: ignore[union-attr]
        fields.extend(f for f in names_read if f not in fields)
    plan = _Plan(source.name, spec.size, field, tuple(fields), args, items,  # type: ignore[union-attr]
                 BatchStream(runner, steps), window, exprs)  # type: ignore[arg-type]  # fmt: skip
    return WindowKernel(engine, runner, plan)


class _Plan:
    """What a kernel computes: the input type, window size, partition field, the
    fields it reads (all carried), the arguments, the items, the chain after the
    aggregate, the per-event window and the filters before it."""

    __slots__ = ("args", "chain", "event_type", "field", "fields", "filters", "items", "size",
                 "window")  # fmt: skip

    def __init__(self, event_type: str, size: int, field: str | None, fields: tuple[str, ...],
                 args: list[_Arg], items: list[tuple[str, _Item]], chain: BatchStream,
                 window: Any, filters: tuple[BatchExpr, ...]) -> None:  # fmt: skip
        self.event_type, self.size, self.field, self.fields = event_type, size, field, fields
        self.args, self.items, self.chain, self.window = args, items, chain, window
        self.filters = filters


# ------------------------------------------------------------------ kernel


class _Carry:
    """The rows of the open windows in arrival order: typed columns of the read fields
    (``kinds``), event times and partition codes (None when not partitioned)."""

    __slots__ = ("codes", "cols", "kinds", "n", "stamps")

    def __init__(self, cols: dict[str, np.ndarray], kinds: dict[str, str], stamps: np.ndarray,
                 codes: np.ndarray | None) -> None:  # fmt: skip
        self.cols, self.kinds, self.stamps, self.codes = cols, kinds, stamps, codes
        self.n = len(stamps)

    def events(self, event_type: str) -> list[Event]:
        """The rows as events holding only the carried fields."""
        names = list(self.cols)
        columns = [self.cols[name].tolist() for name in names]
        rows = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
        if not names:
            rows = [{} for _ in range(self.n)]
        return list(map(Event, repeat(event_type), rows, self.stamps.tolist()))


class WindowKernel:
    """The columnar kernel of one count-windowed aggregate stream (a ``Stateful``).

    ``carry`` is the :class:`_Carry` of the open windows, or None. Partition
    keys get codes in first-seen order (``_codes``, ``_keys``), kept for the
    kernel's life like the per-event partitions.
    """

    __slots__ = ("_codes", "_engine", "_keys", "_plan", "carry", "runner", "types")

    def __init__(self, engine: Engine, runner: _Runner, plan: _Plan) -> None:
        self._engine, self.runner, self._plan = engine, runner, plan
        self.types = frozenset({plan.event_type})
        self.carry: _Carry | None = None
        self._codes: dict[Any, int] = {}
        self._keys: list[Any] = []

    def __repr__(self) -> str:
        plan = self._plan
        return f"WindowKernel({self.runner.name!r}, size={plan.size}, partition={plan.field!r})"

    def idle(self) -> bool:
        """Whether the per-event window holds no rows (every partition's window empty)."""
        window = self._plan.window
        if type(window) is CountWindow:
            return len(window) == 0
        return not any(map(len, window.partitions()))

    def run(self, block: Block) -> list[Event] | None:
        """The outputs per-event processing gives for *block* (rows of this stream's type),
        in order, with the engine's and the stream's ``events_in``/``events_out`` moved as
        it would; None, with nothing changed, to decline (the caller then runs the rows
        per event, which settles first). Keeps the open windows' rows as :attr:`carry`,
        guarding the stream's entry while there are any; *block* is only read."""
        engine, runner, plan = self._engine, self.runner, self._plan
        n = block.n
        if engine.lateness.enabled:
            return None
        if self.carry is None and not self.idle() and not self._absorb():
            return None
        if n == 0:
            return []
        fresh: list[Any] = []
        result = None
        try:
            result = self._compute(block, fresh)
        finally:
            if result is None and fresh:  # forget keys met in a declined block
                for key in fresh:
                    del self._codes[key]
                del self._keys[-len(fresh) :]
        if result is None:
            return None
        outputs, carry = result
        if fresh:
            register = plan.window.partition
            for key in fresh:
                register(key)
        self.carry = carry
        if carry is None:
            unguard(runner)
        else:
            guard(runner, self.settle)
        engine.events_in += n
        runner.events_in += n
        runner.events_out += len(outputs)
        engine.events_out += len(outputs)
        return outputs

    def _absorb(self) -> bool:
        """Take the rows the per-event window holds over as the carry: each partition's
        open window, partitions in first-seen order (the order across partitions does
        not change what any window holds). False, the window refilled as it was, when
        those rows do not fit the columns."""
        window = self._plan.window
        parts = [window] if type(window) is CountWindow else window.partitions()
        held = [ev for part in parts for batch in part.flush() for ev in batch]
        engine, runner = self._engine, self.runner
        saved = (engine.events_in, engine.events_out, runner.events_in, runner.events_out)
        taken = self.run(Block.of_events(held)) if held else []  # no window closes: no output
        engine.events_in, engine.events_out, runner.events_in, runner.events_out = saved
        if taken is None:
            replay(engine, runner, held)
            return False
        return True

    def settle(self) -> None:
        """Hand the carry to the per-event window: its rows are replayed through the
        stream (no outputs; counters kept), the carry is dropped and the guard removed."""
        carry, self.carry = self.carry, None
        unguard(self.runner)  # first: the replay must reach the real entry
        if carry is not None:
            replay(self._engine, self.runner, carry.events(self._plan.event_type))

    # -------------------------------------------------------------- columns

    def _compute(self, block: Block, fresh: list[Any]) -> tuple[list[Event], _Carry | None] | None:
        plan, carry = self._plan, self.carry
        columns: dict[str, np.ndarray] = {}
        kinds: dict[str, str] = {}
        for name in plan.fields:
            typed = block.typed(name)
            if typed is None or (carry is not None and carry.kinds[name] != typed[1]):
                return None
            columns[name], kinds[name] = typed
        stamps = block.timestamps
        if plan.filters:
            kept = _passing(plan.filters, columns, kinds, block.n)
            if kept is None:
                return None
            if len(kept) < block.n:
                columns = {name: column[kept] for name, column in columns.items()}
                stamps = stamps[kept]
        codes = None
        if plan.field is not None:
            if kinds[plan.field] not in "si":
                return None
            codes = self._encode(columns[plan.field].tolist(), fresh)
        if carry is not None:
            columns = {name: np.concatenate((carry.cols[name], column))
                       for name, column in columns.items()}  # fmt: skip
            stamps = np.concatenate((carry.stamps, stamps))
            if codes is not None:
                codes = np.concatenate((carry.codes, codes))  # type: ignore[arg-type]
        total, size = len(stamps), plan.size
        if codes is None:
            closed = total - total % size
            idx = np.arange(closed).reshape(-1, size)
            open_rows = np.arange(closed, total)
        else:
            idx, open_rows = _group(codes, len(self._keys), size)
        outputs: list[Event] | None = []
        if len(idx):
            outputs = self._outputs(idx, columns, kinds, codes, stamps)
            if outputs is None:
                return None
        if not len(open_rows):
            return outputs, None
        kept_cols = {name: column[open_rows] for name, column in columns.items()}
        return outputs, _Carry(kept_cols, kinds, stamps[open_rows],
                               None if codes is None else codes[open_rows])  # fmt: skip

    def _encode(self, keys: list[Any], fresh: list[Any]) -> np.ndarray:
        """Partition codes of *keys* (8 or 16 bits while few keys are known: the stable
        sort of small ints is a radix sort); new keys get the next codes, listed in *fresh*."""
        lookup = self._codes
        try:
            found = _lookup(lookup, keys)
        except KeyError:
            for key in dict.fromkeys(keys):  # first-seen order
                if key not in lookup:
                    lookup[key] = len(self._keys)
                    self._keys.append(key)
                    fresh.append(key)
            found = _lookup(lookup, keys)
        known = len(self._keys)
        dtype = np.int8 if known <= 127 else np.int16 if known <= 32767 else np.intp
        return np.fromiter(found, dtype, len(keys))

    def _outputs(self, idx: np.ndarray, columns: dict[str, np.ndarray], kinds: dict[str, str],
                 codes: np.ndarray | None, stamps: np.ndarray) -> list[Event] | None:  # fmt: skip
        """The outputs of the closed windows *idx* (rows, one window a row), or None."""
        plan = self._plan
        count, size = idx.shape
        flat = idx.ravel()
        gathered: dict[str, np.ndarray] = {}
        results: dict[int, dict[str, Any]] = {}
        for arg in plan.args:
            for name in arg.fields():
                if name not in gathered:
                    gathered[name] = columns[name][flat]
            values = _argument(arg, gathered, kinds, len(flat))
            if values is None:
                return None
            reduced = _reduce(values[0].reshape(count, size), values[1], arg.needs)
            if reduced is None:
                return None
            results[id(arg)] = reduced
        closing = idx[:, -1]
        cols: dict[str, Any] = {}
        if plan.field is not None:
            keys = list(map(self._keys.__getitem__, codes[closing].tolist()))  # type: ignore[index]
            names = keys if type(keys[0]) is str else list(map(partition_name, keys))
            cols["_partition"], cols[plan.field] = names, keys
        try:
            for alias, item in plan.items:
                cols[alias] = _evaluate(item, results, count, size)
        except (ArithmeticError, VPLRuntimeError):
            return None  # per event, the same error is the stream's to report
        out = plan.chain.run(Rows(None, cols, count), self.runner.name)
        if out is False:
            return None
        if out is None or rows_in(out) == 0:  # type: ignore[arg-type]
            return []
        times = stamps[closing]
        if out.pos is not None:  # type: ignore[union-attr]
            times = times[out.pos]  # type: ignore[union-attr]
        fields = rows_of(out, len(times))  # type: ignore[arg-type]
        return list(map(Event, repeat(out.event_type), fields, times.tolist()))  # type: ignore[union-attr]


def _lookup(table: dict[Any, int], keys: list[Any]) -> Sequence[int]:
    """``table[key]`` for each of *keys* (itemgetter loops in C; KeyError when one is new)."""
    if len(keys) < 2:  # itemgetter of one key gives the value, not a tuple
        return [table[key] for key in keys]
    return itemgetter(*keys)(table)


def _passing(filters: tuple[BatchExpr, ...], columns: dict[str, np.ndarray],
             kinds: dict[str, str], n: int) -> np.ndarray | None:  # fmt: skip
    """The rows (ascending) every filter keeps, or None when one is not exact for them.

    Each filter is evaluated on all *n* rows, those an earlier filter dropped included:
    the kernels never fail, and a value one is not exact for declines the block."""
    mask = None
    for expr in filters:
        kernel = expr.kernel([kinds[name] for name in expr.fields])
        if kernel is None:
            return None
        inputs = {name: columns[name] for name in expr.fields}
        if n and not kernel.exact(inputs):
            return None
        passed = np.asarray(kernel.mask(inputs, n), dtype=np.bool_)
        mask = passed if mask is None else mask & passed
    return np.flatnonzero(mask) if mask is not None else np.arange(n)


def _group(codes: np.ndarray, partitions: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The closed windows (a ``[windows, size]`` matrix of row numbers, ordered by
    closing row) and the open rows (ascending) of rows with partition *codes*."""
    order = np.argsort(codes, kind="stable")  # radix sort: codes are 8 or 16 bits when few
    counts = np.bincount(codes, minlength=partitions)
    ends = np.cumsum(counts)
    # sorted position i is in a closed window when before its partition's start + full part
    limits = ends - counts + (counts - counts % size)
    closed = np.arange(len(codes)) < limits[codes[order]]
    idx = order[closed].reshape(-1, size)
    if len(idx) > 1:
        idx = idx[np.argsort(idx[:, -1])]
    opened = order[~closed]
    opened.sort()
    return idx, opened


def _argument(arg: _Arg, gathered: dict[str, np.ndarray], kinds: dict[str, str],
              n: int) -> tuple[np.ndarray, str] | None:  # fmt: skip
    """The values of *arg* over the gathered rows and their kind, or None when inexact."""
    if arg.field is not None:
        return gathered[arg.field], kinds[arg.field]
    expr: BatchExpr = arg.expr  # type: ignore[assignment]
    kernel = expr.kernel([kinds[name] for name in expr.fields])
    if kernel is None:
        return None
    inputs = {name: gathered[name] for name in expr.fields}
    if not kernel.exact(inputs):
        return None
    return kernel(inputs, n), kernel.kind


def _reduce(matrix: np.ndarray, kind: str, needs: set[str]) -> dict[str, Any] | None:
    """Each needed function over every row of *matrix* (one window a row), or None when
    a numeric function meets non-numbers or NaN (see the module docstring)."""
    count, size = matrix.shape
    out: dict[str, Any] = {}
    if kind not in "ifbs":  # null ("n"): skipped by count, kept by first/last; per event
        return None
    if needs & _NUMERIC:
        if kind not in "if" or (kind == "f" and np.isnan(matrix).any()):
            return None
        if "sum" in needs or "avg" in needs:
            acc = matrix.astype(np.float64)  # a copy: float + int converts the int
            acc[:, 0] += 0.0  # the scalar sum starts at 0.0
            with np.errstate(over="ignore", invalid="ignore"):  # inf and nan, as in Python
                np.add.accumulate(acc, axis=1, out=acc)
            out["sum"] = total = acc[:, -1].copy()
            if "avg" in needs:
                out["avg"] = total / size
        if "min" in needs or "max" in needs:
            rows = np.arange(count)
            if "min" in needs:
                out["min"] = matrix[rows, matrix.argmin(axis=1)].astype(np.float64)
            if "max" in needs:
                out["max"] = matrix[rows, matrix.argmax(axis=1)].astype(np.float64)
    if "first" in needs:
        out["first"] = matrix[:, 0]
    if "last" in needs:
        out["last"] = matrix[:, -1]
    if "count" in needs:
        out["count"] = np.full(count, size, dtype=np.int64)  # typed: never missing nor null
    return out


def _evaluate(item: _Item, results: dict[int, dict[str, Any]], count: int, size: int) -> Any:
    """The values of *item* for *count* windows: an array for a bare aggregate, else a list."""
    tag = item[0]
    if tag == "agg":
        arg = item[2]
        if arg is None:  # count()
            return np.full(count, size, dtype=np.int64)
        return results[id(arg)][item[1]]
    if tag == "const":
        return [item[1]] * count
    if tag == "neg":
        return list(map(item_neg, _listed(_evaluate(item[1], results, count, size))))
    left = _listed(_evaluate(item[2], results, count, size))
    right = _listed(_evaluate(item[3], results, count, size))
    return list(map(ITEM_OPS[item[1]], left, right))


def _listed(values: Any) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else values
