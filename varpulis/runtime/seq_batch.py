"""Sequences over columns: whole blocks of events matched with numpy (a stateful kernel).

Two shapes of sequence stream run here — written with ``->`` steps or as a
named ``pattern`` of one ``SEQ(...)`` — (:func:`build` tells; anything else
runs per event through :class:`~varpulis.runtime.nfa.SequenceMatcher`):

* a *chain* ``A as a -> B as b -> ...``: two or more single steps, each
  filtered (if at all) by its own event's fields and constants;
* a *rise* ``A as a -> all B where p as b .within(d)``: a first step filtered
  by its own fields, then a Kleene step whose filter may also read ``a.f``.

Both may have ``.not(X [where p])`` guards whose filter reads X's own
fields, and ``.partition_by(k)`` (keys: one column of ints, strings or bools);
what follows the steps must be a ``.where``/``.select``/``.emit`` chain that
:func:`compile_chain` lowers once the captures are columns (``a.f`` → the field
of the captured row, ``len(b)``, a bare ``f`` → the completing event's field).

The matcher's rules (``runtime/nfa.py``) in column form, for event times that
never decrease: rows are grouped by partition first (a stable sort), so a run
meets only rows of its partition; a run starts at every row eligible for the
first step; a chain run moves to the first later row eligible for its next
step (``np.searchsorted`` over the eligible rows) and matches on its last one;
a rise run matches once per later row eligible for the Kleene step, ``len(b)``
being the running count (a cumulative sum along the run). A guard row kills
the runs of its partition before they advance: a chain run dies if one comes
after its start and no later than its last row; a rise stops matching at the
first. A run is alive while its first row's time plus ``within`` is not
before the clock (the latest time seen). Matches come ordered by completing
row, then run start, as the matcher yields them.

The carry (see :mod:`varpulis.runtime.blocks`) is what live runs still need:
for a chain whose first type comes back at no later step, the rows live runs
captured (replayed, they rebuild exactly those runs and no other); otherwise
the rows from the earliest live run's start on. A block is declined (None)
when the matcher holds runs it cannot take over, the times go backwards, a column a kernel reads
is missing or mixed, a kernel is not exact for the values, or the runs could
reach the matcher's ``max_runs``.
"""

from __future__ import annotations

import logging
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from varpulis.compiler.batch import BatchExpr, compile_chain, supported
from varpulis.events import Event
from varpulis.lang import ast
from varpulis.runtime.blocks import Block, guard, replay, unguard
from varpulis.runtime.chains import BatchStream, Rows, rows_of

if TYPE_CHECKING:
    from varpulis.compiler.batch import BatchStep
    from varpulis.compiler.scope import Scope
    from varpulis.runtime.engine import Engine

__all__ = ["SequenceKernel", "build"]

logger = logging.getLogger("varpulis.runtime")

#: Most cells (runs × rows) one rise kernel evaluates at a time.
_CELLS = 1 << 21
_NONE = np.empty(0, dtype=np.int64)
_TIMESTAMP = attrgetter("timestamp")


class _Decline(Exception):
    """This stream or block cannot run here (the message says why)."""


# ------------------------------------------------------------------ analysis


def _rewrite(node: Any, scope: Scope, aliases: frozenset[str]) -> Any:
    """*node* with ``x.f`` of an alias in *aliases* → column ``"x.f"``, ``len(x)`` →
    ``"#x"``, a field ``f`` → ``".f"``; raises _Decline for anything else."""
    if isinstance(node, (ast.Literal, ast.Duration)):
        return node
    if isinstance(node, ast.Name):
        if node.id in scope.aliases or node.id in aliases:
            msg = f"{node.id!r} names a whole capture"
            raise _Decline(msg)
        return node if scope.is_constant(node.id) else ast.Name("." + node.id, node.span)
    if isinstance(node, ast.Attr) and isinstance(node.obj, ast.Name):
        if node.obj.id in aliases:
            return ast.Name(f"{node.obj.id}.{node.name}", node.span)
        msg = f"{node.obj.id}.{node.name} is not a field of a visible capture"
        raise _Decline(msg)
    if isinstance(node, ast.Call) and node.func == "len" and not node.kwargs:
        if len(node.args) == 1 and isinstance(node.args[0], ast.Name):
            if node.args[0].id in aliases:
                return ast.Name("#" + node.args[0].id, node.span)
        msg = "len() of something other than a capture"
        raise _Decline(msg)
    if isinstance(node, ast.Unary):
        return ast.Unary(node.op, _rewrite(node.operand, scope, aliases), node.span)
    if isinstance(node, ast.Binary):
        left = _rewrite(node.left, scope, aliases)
        return ast.Binary(node.op, left, _rewrite(node.right, scope, aliases), node.span)
    msg = f"{type(node).__name__} is not lowered to columns"
    raise _Decline(msg)


def _rewrite_op(op: ast.Op, scope: Scope, aliases: frozenset[str]) -> ast.Op:
    args = tuple(_rewrite(a, scope, aliases) for a in op.args)
    if op.name == "select":
        msg = ".select after a sequence"
        raise _Decline(msg)  # a select copies names: fields of the last
    kwargs = tuple((k, _rewrite(v, scope, aliases)) for k, v in op.kwargs)
    return ast.Op(op.name, args, kwargs, op.span)


class _Step:
    """One step: its type, alias, filter (None: every event of the type) and Kleene flag."""

    __slots__ = ("alias", "event_type", "kleene", "where")

    def __init__(self, event_type: str, alias: str | None, where: BatchExpr | None,
                 kleene: bool) -> None:  # fmt: skip
        self.event_type, self.alias, self.where, self.kleene = event_type, alias, where, kleene


def _items(decl: ast.StreamDecl, scope: Scope, pattern: ast.PatternDecl | None) -> list[tuple]:
    """``(type, alias, where, kleene)`` per step: the stream's ``->`` steps (a ``.where``
    before the first one filters it), or the items of the named *pattern*'s one SEQ."""
    source = decl.source
    if pattern is not None:
        from varpulis.runtime.patterns import pattern_branches

        alternatives = pattern_branches(pattern, scope)
        if len(alternatives) != 1 or len(alternatives[0]) != 1:
            msg = "a pattern with OR or AND"
            raise _Decline(msg)
        items = alternatives[0][0]
        if any(nots or quant not in ("", "+") for _, _, _, _, quant, nots in items):
            msg = "a pattern item with NOT, * or ?"
            raise _Decline(msg)
        return [(t, alias, where, quant == "+") for _, t, alias, where, quant, _ in items]
    at = [i for i, op in enumerate(decl.ops) if isinstance(op, ast.SeqStep)]
    if not at:
        msg = "no '->' steps"
        raise _Decline(msg)
    leading = [op.args[0] for op in decl.ops[: at[0]] if isinstance(op, ast.Op)
               and op.name == "where" and len(op.args) == 1]  # fmt: skip
    first_where = None
    for pred in leading:
        first_where = pred if first_where is None else ast.Binary("and", first_where, pred)
    items = [(source.name, source.alias, first_where, False)]  # type: ignore[union-attr]
    return items + [(s.event_type, s.alias, s.where, s.kleene) for s in (decl.ops[i] for i in at)]


def _steps(
    decl: ast.StreamDecl, scope: Scope, pattern: ast.PatternDecl | None
) -> tuple[list[_Step], list[_Step]]:
    """The steps and the stream's ``.not(...)`` guards (as steps without alias)."""
    if not isinstance(decl.source, ast.EventSource):
        msg = "not an event source"
        raise _Decline(msg)
    guards = [_guard(op, scope) for op in decl.ops if isinstance(op, ast.Negation)]
    items = _items(decl, scope, pattern)
    steps = []
    for n, (event_type, alias, where, kleene) in enumerate(items):
        visible = frozenset({items[0][1]}) if n and kleene and items[0][1] else frozenset()
        expr = None
        if where is not None:
            expr = BatchExpr(_rewrite(where, scope, visible), scope, predicate=True)
            if not supported(expr.node, scope):
                msg = "a step filter is not lowered to columns"
                raise _Decline(msg)
        steps.append(_Step(event_type, alias, expr, kleene))
    return steps, guards


def _guard(negation: ast.Negation, scope: Scope) -> _Step:
    """A ``.not(X [where p])`` whose filter reads only X's own fields."""
    expr = None
    if negation.where is not None:
        expr = BatchExpr(_rewrite(negation.where, scope, frozenset()), scope, predicate=True)
        if not supported(expr.node, scope) or any(f[0] != "." for f in expr.fields):
            msg = "a .not() filter that reads captures or is not lowered to columns"
            raise _Decline(msg)
    return _Step(negation.event_type, None, expr, False)


def build(engine: Engine, runner: Any) -> SequenceKernel | None:
    """The kernel of *runner* when its stream has one of the two shapes (module
    docstring) and nothing else reads its events or its outputs, else None."""
    matcher = getattr(runner.entry, "matcher", None)
    if matcher is None or runner.forward or engine.lateness.enabled:
        return None
    spec = matcher.spec
    if len(spec.alternatives) != 1:
        return None
    source = runner.decl.source
    pattern = engine.plan.patterns.get(getattr(source, "name", None))
    try:
        steps, guards = _steps(runner.decl, engine.scope, pattern)
        within, rest = spec.within_ns, spec.rest
        if any(g.uses_captures for g in spec.negations):
            msg = "a .not() filter reads captures"
            raise _Decline(msg)
        kleene = [s.kleene for s in steps]
        if any(kleene[:-1]) or (kleene[-1] and (len(steps) != 2 or within is None)):
            msg = "a Kleene step other than the second and last, with within"
            raise _Decline(msg)
        aliases = frozenset(s.alias for s in steps if s.alias)
        ops = [_rewrite_op(op, engine.scope, aliases) for op in rest]
        chain = compile_chain(ops, engine.scope, runner.name)
        if chain is None:
            msg = "its operations after the match are not lowered to columns"
            raise _Decline(msg)
    except _Decline as why:
        logger.debug("sequence %r runs per event: %s", runner.name, why)
        return None
    types = frozenset(s.event_type for s in steps + guards)
    if any(engine.routes.get(t) != [runner] for t in types):
        return None
    return SequenceKernel(engine, runner, matcher, steps, within, chain, spec.partition_by,
                          guards)  # fmt: skip


# ------------------------------------------------------------------ the kernel


class SequenceKernel:
    """The columnar matcher of one sequence stream (a :class:`~varpulis.runtime.blocks.Stateful`).

    ``columnar`` counts the events it ran; a kernel belongs to its engine's thread.
    """

    def __init__(self, engine: Engine, runner: Any, matcher: Any, steps: list[_Step],
                 within: int | None, chain: tuple[BatchStep, ...], partition: str | None = None,
                 guards: list[_Step] | None = None) -> None:  # fmt: skip
        self.engine, self.runner, self.matcher = engine, runner, matcher
        self.partition = partition
        self.steps = steps
        self.within = within
        self.stream = BatchStream(runner, chain)
        #: ``.not(...)`` guards: a row one accepts kills the runs of its partition.
        self.guards = guards or []
        self.types = frozenset(s.event_type for s in steps + self.guards)
        self.rise = steps[-1].kleene
        first = steps[0].event_type
        self.subset = not self.rise and all(s.event_type != first for s in steps[1:])
        self.code = {t: i for i, t in enumerate(sorted(self.types))}
        self.carry: Block | None = None
        self.columnar = 0

    def __repr__(self) -> str:
        kind = "rise" if self.rise else "chain"
        return f"SequenceKernel({self.runner.name!r}, {kind}, {len(self.steps)} steps)"

    def settle(self) -> None:
        """Hand the carried runs to the matcher (replayed per event, outputs dropped)."""
        carry, self.carry = self.carry, None
        unguard(self.runner)
        if carry is not None:
            clock = self.matcher.clock
            replay(self.engine, self.runner, carry.events())
            self.matcher.advance_clock(clock)

    def run(self, block: Block) -> list[Event] | None:
        """The outputs of *block*'s rows (module docstring), or None: run them per event."""
        matcher = self.matcher
        if self.carry is None and matcher.active_runs:
            matcher.sweep()
            if matcher.active_runs and not self._absorb():
                return None
        rows = Block.join(self.carry, block)
        stamps = rows.timestamps
        if block.timestamps[0] < matcher.clock or (np.diff(stamps) < 0).any():
            return None
        try:
            found = self._kleene(rows) if self.rise else self._chain(rows)
        except _Decline as why:
            logger.debug("%d events of sequence %r run per event: %s", block.n,
                         self.runner.name, why)  # fmt: skip
            return None
        cols, completing, keep = found
        outputs = self._emit(cols, completing, stamps)
        if outputs is None:
            return None
        self._commit(rows, keep, int(stamps[-1]), block.n, len(outputs))
        return outputs

    # ------------------------------------------------------------- internals

    def _absorb(self) -> bool:
        """Take the matcher's live runs over as the carry: the rows they captured, in
        time order. Only where replaying those rows rebuilds exactly those runs (a
        rise, a two-step chain, a chain whose first type comes back at no later
        step; every step captured) and their times tell their order (no ties)."""
        if not (self.subset or self.rise or len(self.steps) == 2):
            return False
        if any(s.alias is None for s in self.steps):
            return False
        rows: dict[int, Event] = {}
        for captures in self.matcher.live_captures():
            for value in captures.values():
                for ev in value if type(value) is list else (value,):
                    rows.setdefault(id(ev), ev)
        ordered = sorted(rows.values(), key=_TIMESTAMP)
        stamps = [ev.timestamp for ev in ordered]
        if len(set(stamps)) != len(stamps):
            return False
        self.matcher.clear_runs()
        self.carry = Block.of_events(ordered) if ordered else None
        return True

    def _codes(self, rows: Block) -> np.ndarray:
        """Each row's event type as its index in ``code`` (rows are of ``types`` only)."""
        return np.fromiter(map(self.code.__getitem__, rows.types), dtype=np.int16, count=rows.n)

    def _eligible(self, step: _Step, rows: Block, codes: np.ndarray, at: np.ndarray | None,
                  extra: dict[str, np.ndarray] | None = None) -> np.ndarray:  # fmt: skip
        """A bool per row (or per index of *at*) whether it may take *step*."""
        mask = codes == self.code[step.event_type]
        if step.where is None:
            return mask
        columns, kinds = {}, []
        for name in step.where.fields:
            if name[0] == ".":
                typed = rows.typed(name[1:])
                if typed is None:
                    msg = f"field {name[1:]!r} missing or mixed"
                    raise _Decline(msg)
                columns[name] = typed[0] if at is None else typed[0][at]
                kinds.append(typed[1])
            else:
                columns[name], kind = extra[name]  # type: ignore[index,misc]
                kinds.append(kind)
        kernel = step.where.kernel(kinds)
        if kernel is None or not kernel.exact(columns):
            msg = "a step filter is not exact for these values"
            raise _Decline(msg)
        return mask & kernel.mask(columns, len(mask))

    def _layout(self, rows: Block) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Rows grouped by partition: ``order`` (grouped position → row; rows keep their
        order within a partition) and each grouped position's partition; (None, None)
        without ``.partition_by``. Keys must be one column of ints, strings or bools."""
        if self.partition is None:
            return None, None
        typed = rows.typed(self.partition)
        if typed is None or typed[1] == "f":
            msg = f"partition field {self.partition!r} missing, mixed or float"
            raise _Decline(msg)
        keys = np.unique(typed[0], return_inverse=True)[1].reshape(-1)
        order = np.argsort(keys, kind="stable")
        return order, keys[order]

    def _guarded(self, rows: Block, codes: np.ndarray, order: np.ndarray | None) -> np.ndarray:
        """Per grouped position: whether a ``.not(...)`` guard accepts that row."""
        mask = np.zeros(rows.n, dtype=np.bool_)
        for negation in self.guards:
            mask |= self._eligible(negation, rows, codes, None)
        return mask if order is None else mask[order]

    def _kill_rows(self, rows: Block, codes: np.ndarray, order: np.ndarray | None,
                   part: np.ndarray | None, grouped: np.ndarray) -> np.ndarray | None:  # fmt: skip
        """For runs starting at grouped positions *grouped*: the grouped position of the
        first guard row after the start in the same partition (n: none); None: no guards."""
        if not self.guards:
            return None
        n = rows.n
        hits = np.flatnonzero(self._guarded(rows, codes, order))
        j = np.searchsorted(hits, grouped, side="right")
        found = j < len(hits)
        kill = hits[np.minimum(j, len(hits) - 1)] if len(hits) else np.full(len(grouped), n)
        if part is not None:
            found &= part[np.minimum(kill, n - 1)] == part[grouped]
        return np.where(found, kill, n)

    def _killed(self, rows: Block, codes: np.ndarray, order: np.ndarray | None,
                part: np.ndarray | None, starts: np.ndarray,
                pos: np.ndarray) -> np.ndarray | None:  # fmt: skip
        """Whether a guard row comes after each chain run's start and no later than its
        completing row (or anywhere after the start while it waits): negations are
        checked before runs advance. Positions are grouped; None: no guards."""
        kill = self._kill_rows(rows, codes, order, part, starts)
        return None if kill is None else kill <= np.minimum(pos, rows.n - 1)

    def _chain(self, rows: Block) -> tuple[dict, np.ndarray, np.ndarray]:
        n = rows.n
        codes = self._codes(rows)
        order, part = self._layout(rows)
        eligible = [self._eligible(step, rows, codes, None) for step in self.steps]
        if order is not None:
            eligible = [mask[order] for mask in eligible]
        starts = np.flatnonzero(eligible[0])
        if len(starts) >= self.matcher.max_runs:
            msg = "as many runs as max_runs"
            raise _Decline(msg)
        positions = [starts]
        pos = starts
        for mask in eligible[1:]:  # in grouped positions: a run's next row is in its partition
            idx = np.flatnonzero(mask)
            j = np.searchsorted(idx, pos, side="right")
            found = (j < len(idx)) & (pos < n)
            after = idx[np.minimum(j, len(idx) - 1)] if len(idx) else np.full(len(pos), n)
            if part is not None:
                found &= part[np.minimum(after, n - 1)] == part[np.minimum(pos, n - 1)]
            pos = np.where(found, after, n)
            positions.append(pos)
        killed = self._killed(rows, codes, order, part, starts, pos)
        if order is not None:  # back to row numbers (n: not found)
            positions = [np.where(p < n, order[np.minimum(p, n - 1)], n) for p in positions]
            starts, pos = positions[0], positions[-1]
        stamps = rows.timestamps
        deadline = stamps[starts] + (self.within if self.within is not None else 0)
        complete = pos < n
        if self.within is None:
            alive = np.ones(len(starts), dtype=np.bool_)
            matched = complete
        else:
            alive = deadline >= stamps[-1]
            matched = complete & (stamps[np.minimum(pos, n - 1)] <= deadline)
        if killed is not None:
            alive &= ~killed
            matched &= ~killed
        offset = self.carry.n if self.carry is not None else 0
        out = np.flatnonzero(matched & (pos >= offset))
        if order is not None:  # by completing row, then run start (creation order)
            out = out[np.lexsort((starts[out], pos[out]))]
        live = ~complete & alive
        if self.subset:
            keep = np.unique(np.concatenate([p[live][p[live] < n] for p in positions]))
        else:
            keep = np.arange(starts[live].min(), n) if live.any() else _NONE
        captured = {s.alias: p[out] for s, p in zip(self.steps, positions, strict=True) if s.alias}
        ones = np.ones(len(out), dtype=np.int64)
        return _match_columns(self.stream, rows, captured, {a: ones for a in captured},
                              pos[out]), pos[out], keep  # fmt: skip

    def _kleene(self, rows: Block) -> tuple[dict, np.ndarray, np.ndarray]:
        n = rows.n
        codes = self._codes(rows)
        order, part = self._layout(rows)
        first, step = self.steps
        starts = np.flatnonzero(self._eligible(first, rows, codes, None))
        if len(starts) >= self.matcher.max_runs:
            msg = "as many runs as max_runs"
            raise _Decline(msg)
        stamps = rows.timestamps
        deadline = stamps[starts] + self.within
        ends = np.searchsorted(stamps, deadline, side="right")  # rows before: still alive
        grouped = starts
        if order is not None:  # a run's band: the rows of its partition before its end
            where = np.empty(n, dtype=np.int64)
            where[order] = np.arange(n)
            grouped = where[starts]
            key = part * n + order  # ascending over grouped positions
            ends = np.searchsorted(key, part[grouped] * n + ends, side="left")
        kill = self._kill_rows(rows, codes, order, part, grouped)
        if kill is not None:  # a guard row ends the run: it matches only rows before it
            ends = np.minimum(ends, kill)
        widths = ends - grouped - 1
        offset = self.carry.n if self.carry is not None else 0
        parts = []
        width = int(widths.max()) if len(starts) else 0
        if width > 0:
            per = max(1, _CELLS // width)
            for lo in range(0, len(starts), per):
                chunk = slice(lo, lo + per)
                parts.append(self._rise(rows, codes, order, starts[chunk], grouped[chunk],
                                        widths[chunk], width, offset))  # fmt: skip
        if parts:
            run_of = np.concatenate([p[0] for p in parts])
            at = np.concatenate([p[1] for p in parts])
            count = np.concatenate([p[2] for p in parts])
            by = np.argsort(at, kind="stable") if order is None else np.lexsort((run_of, at))
            run_of, at, count = run_of[by], at[by], count[by]
        else:
            run_of = at = count = _NONE
        alive = deadline >= stamps[-1]
        if kill is not None:
            alive &= kill >= n
        live = np.flatnonzero(alive)
        keep = np.arange(starts[live].min(), n) if len(live) else _NONE
        captured = {first.alias: run_of, step.alias: at}
        counts = {first.alias: np.ones(len(at), dtype=np.int64), step.alias: count}
        captured.pop(None, None)
        counts.pop(None, None)
        return _match_columns(self.stream, rows, captured, counts, at), at, keep

    def _rise(self, rows: Block, codes: np.ndarray, order: np.ndarray | None,
              starts: np.ndarray, grouped: np.ndarray, widths: np.ndarray, width: int,
              offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """(start row, matching row, len(b)) of the matches of runs *starts* (at grouped
        positions *grouped*), run-major."""
        n = rows.n
        at = grouped[:, None] + np.arange(1, width + 1)[None, :]
        valid = (at - grouped[:, None]) <= widths[:, None]
        at = np.minimum(at, n - 1)
        if order is not None:
            at = order[at]
        flat = at.ravel()
        first, step = self.steps
        extra = {}
        if first.alias is not None and step.where is not None:
            run_rows = np.repeat(starts, width)
            for name in step.where.fields:
                if name[0] != ".":
                    typed = rows.typed(name.split(".", 1)[1])
                    if typed is None:
                        msg = f"field {name!r} missing or mixed"
                        raise _Decline(msg)
                    extra[name] = (typed[0][run_rows], typed[1])
        ok = self._eligible(step, rows, codes[flat], flat, extra).reshape(valid.shape) & valid
        count = np.cumsum(ok, axis=1)
        ok &= at >= offset
        cells = np.flatnonzero(ok)
        return (np.repeat(starts, width)[cells], flat[cells],
                count.ravel()[cells].astype(np.int64))  # fmt: skip

    def _emit(self, cols: dict[str, Any], completing: np.ndarray,
              stamps: np.ndarray) -> list[Event] | None:  # fmt: skip
        count = len(completing)
        if count == 0:
            return []
        result = self.stream.run(Rows(None, cols, count), self.runner.name)
        if result is False:
            return None
        if result is None:
            return []
        pos = result.pos
        chosen = stamps[completing] if pos is None else stamps[completing[pos]]
        fields = rows_of(result, len(chosen))
        kind = result.event_type
        return [Event(kind, f, t) for f, t in zip(fields, chosen.tolist(), strict=True)]

    def _commit(self, rows: Block, keep: np.ndarray, clock: int, inputs: int, outputs: int) -> None:
        engine, runner = self.engine, self.runner
        engine.events_in += inputs
        runner.events_in += inputs
        engine.events_out += outputs
        runner.events_out += outputs
        self.columnar += inputs
        self.matcher.advance_clock(clock)
        self.carry = rows.take(keep)
        if self.carry is None:
            unguard(runner)
        else:
            guard(runner, self.settle)


def _match_columns(stream: BatchStream, rows: Block, captured: dict[str, np.ndarray],
                   counts: dict[str, np.ndarray], last: np.ndarray) -> dict[str, Any]:  # fmt: skip
    """The columns the chain after the match reads, one row per match."""
    cols: dict[str, Any] = {}
    for name in _fields_read(stream):
        if name[0] == "#":
            cols[name] = counts[name[1:]]
            continue
        alias, _, field = name.partition(".")
        at = last if alias == "" else captured.get(alias)
        if at is None:
            msg = f"{name!r} reads no capture"
            raise _Decline(msg)
        typed = rows.typed(field)
        if typed is None:
            msg = f"field {field!r} missing or mixed"
            raise _Decline(msg)
        cols[name] = typed[0][at]
    return cols


def _fields_read(stream: BatchStream) -> list[str]:
    names: dict[str, None] = {}
    for step in stream.steps:
        if step.expr is not None:
            names.update(dict.fromkeys(step.expr.fields))
        for _, item in step.items:
            names.update(dict.fromkeys([item] if isinstance(item, str) else item.fields))
    return list(names)
