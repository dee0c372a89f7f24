"""Run kernel IR (:mod:`kernels.ir`) as a SIMT program over numpy arrays.

A :class:`Kernel` is compiled once into closures; :meth:`Kernel.run` executes it
for one call (the parameters' values) and returns the rows its ``emit``
statements produced as :class:`~kernels.columnar.ColumnarBatch` runs, in exactly
the order a sequential execution would have emitted them.

Model. A *lane* is one sequential thread of the program; every variable is an
array with one element per lane (:class:`Lanes`). A call starts with one lane.
``for v in a..b`` gives every iteration its own lane (iterations are
independent, see the IR contract) and discards them afterwards; ``if`` runs each
branch on the lanes whose condition holds (gathered into a compact set, or by
mask for a lone ``return``/``break``/``continue``); ``while`` iterates while any
lane's condition holds, copying each lane's state back the moment it leaves and
compacting the working set once fewer than ``compact_below`` of its lanes are
still running; ``return``/``break``/``continue`` retire lanes until their
frame, loop or iteration ends. Each lane keeps an emission counter and, per
enclosing ``for``, the counter's value at loop entry and its iteration number:
these order keys sort the rows into sequential order when more than one emit
execution produced them.

Exactness. Values are int64, float64 and bool, operated on with VPL's rules
(``/`` on two ints truncates toward zero, ``%`` takes the dividend's sign,
int/float mixes promote). Where a result could differ from Python's unbounded
ints or from VPL's ``null`` (int overflow, a division by zero, an int/float
comparison beyond 2**53, a float range bound beyond 2**62, a function ending
without a value, the ``while`` step budget), :class:`Fallback` is raised and the
call's partial results are discarded: the caller runs the scalar path instead,
which is exact by construction. Kernels are immutable after construction and
may be shared between threads; each run allocates its own arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kernels import ir
from kernels.columnar import ColumnarBatch
from kernels.lanes import DTYPES, Fallback, Fn, Lanes, check, compile_expr, full, hidden

__all__ = ["Fallback", "Kernel"]

# exit codes; a return from frame f is _RETURN + f
_CONTINUE, _BREAK, _RETURN = 1, 2, 3
_BUDGET = "while step budget exceeded"
_LONG_RANGE = "for range longer than the step budget"
_BOUND = 2**62

Step = Callable[[Lanes, "_Run"], None]


class _Run:
    """Per-call state: budget, emitted chunks (site, type, columns, keys)."""

    __slots__ = ("budget", "chunks", "compact_below")

    def __init__(self, budget: int, compact_below: float) -> None:
        self.budget, self.compact_below = budget, compact_below
        self.chunks: list[tuple[int, str, dict[str, np.ndarray], list[np.ndarray]]] = []


def _has_continue(stmts: Sequence[ir.Stmt]) -> bool:
    """True when a ``continue`` in *stmts* targets the loop whose body they are."""
    for s in stmts:
        if isinstance(s, ir.Continue):
            return True
        if isinstance(s, ir.If):
            bodies = [body for _, body in s.branches] + [s.orelse]
            if any(_has_continue(body) for body in bodies):
                return True
    return False


# ----------------------------------------------------------------- statements


def _assigned(stmts: Sequence[ir.Stmt]) -> set[str]:
    """Variables a statement list may assign (nested bodies included)."""
    out: set[str] = set()
    for s in stmts:
        if isinstance(s, ir.Assign):
            out.add(s.name)
        elif isinstance(s, ir.If):
            for _, body in s.branches:
                out |= _assigned(body)
            out |= _assigned(s.orelse)
        elif isinstance(s, (ir.While, ir.For)):
            out |= _assigned(s.body)
        elif isinstance(s, ir.Frame):
            out |= _assigned(s.body)
            if s.result is not None:
                out.add(s.result)
    return out


def _expr_names(node: ir.Expr, out: set[str]) -> None:
    if isinstance(node, ir.Var):
        out.add(node.name)
    elif isinstance(node, (ir.Bin, ir.Cmp, ir.Logic)):
        _expr_names(node.left, out)
        _expr_names(node.right, out)
    elif isinstance(node, (ir.Not, ir.Neg)):
        _expr_names(node.operand, out)
    elif isinstance(node, ir.Select):
        for part in (node.cond, node.then, node.orelse):
            _expr_names(part, out)


def _touched(stmts: Sequence[ir.Stmt], out: set[str]) -> set[str]:
    """Variables *stmts* read or write; ``"$emit"`` when they emit or expand lanes."""
    for s in stmts:
        if isinstance(s, ir.Assign):
            out.add(s.name)
            _expr_names(s.value, out)
        elif isinstance(s, ir.If):
            for cond, body in s.branches:
                _expr_names(cond, out)
                _touched(body, out)
            _touched(s.orelse, out)
        elif isinstance(s, ir.While):
            _expr_names(s.cond, out)
            _touched(s.body, out)
        elif isinstance(s, ir.For):
            out.update((s.var, "$emit"))
            _expr_names(s.start, out)
            _expr_names(s.stop, out)
            _touched(s.body, out)
        elif isinstance(s, ir.Return) and s.value is not None:
            _expr_names(s.value, out)
        elif isinstance(s, ir.Emit):
            out.add("$emit")
            for _, value in s.fields:
                _expr_names(value, out)
        elif isinstance(s, ir.Frame):
            _touched(s.body, out)
            if s.result is not None:
                out.add(s.result)
    return out


def _scatter(dst: Lanes, src: Lanes, rows: np.ndarray, names: set[str]) -> None:
    """Copy *src*'s lanes into positions *rows* of *dst* for the written variables."""
    for name, arr in src.vars.items():
        if name in names or hidden(name):
            target = dst.vars.get(name)
            if target is None:
                target = dst.vars[name] = np.zeros(dst.n, arr.dtype)
            target[rows] = arr


class _Compiler:
    """Turns statements into closures ``step(lanes, run)``."""

    def block(self, stmts: Sequence[ir.Stmt]) -> Step:
        steps = [(self.stmt(s), isinstance(s, (ir.Assign, ir.Emit))) for s in stmts]

        def run_block(lanes: Lanes, run: _Run) -> None:
            for step, safe in steps:
                step(lanes, run)
                if not safe and lanes.alive == 0:
                    return

        return run_block

    def stmt(self, node: ir.Stmt) -> Step:
        handler = getattr(self, "s_" + type(node).__name__.lower(), None)
        if handler is None:
            message = f"not a kernel statement: {node!r}"
            raise TypeError(message)
        return handler(node)

    def s_assign(self, node: ir.Assign) -> Step:
        name, value = node.name, compile_expr(node.value)
        alias = isinstance(node.value, ir.Var)

        def assign(lanes: Lanes, run: _Run) -> None:
            v = value(lanes)
            if np.ndim(v) == 0:
                v = full(v, lanes.n)
            elif alias:
                v = v.copy()
            if lanes.protect and lanes.active is not None and name in lanes.vars:
                v = np.where(lanes.active, v, lanes.vars[name])
            lanes.vars[name] = v

        return assign

    def retire(self, node: ir.Stmt) -> Callable[[Lanes, np.ndarray], None]:
        """``return``/``break``/``continue`` applied to the running lanes of a mask."""
        if isinstance(node, (ir.Break, ir.Continue)):
            code = _BREAK if isinstance(node, ir.Break) else _CONTINUE

            def loop_exit(lanes: Lanes, mask: np.ndarray) -> None:
                lanes.kill(np.flatnonzero(mask), code)
                lanes.protect = True

            return loop_exit
        frame, value = node.frame, None if node.value is None else compile_expr(node.value)
        ret, rset = f"$ret{frame}", f"$rset{frame}"

        def return_(lanes: Lanes, mask: np.ndarray) -> None:
            rows = np.flatnonzero(mask)
            if value is not None and ret in lanes.vars:
                v = value(lanes)
                lanes.vars[ret][rows] = v[rows] if np.ndim(v) else v
                lanes.vars[rset][rows] = True
            lanes.kill(rows, _RETURN + frame)

        return return_

    def s_return(self, node: ir.Return) -> Step:
        retire = self.retire(node)

        def return_(lanes: Lanes, run: _Run) -> None:
            act = lanes.active
            retire(lanes, np.ones(lanes.n, np.bool_) if act is None else act.copy())

        return return_

    s_break = s_continue = s_return

    def s_if(self, node: ir.If) -> Step:
        arms: list[tuple[Fn | None, Any, bool]] = []
        for cond, body in (*node.branches, (None, node.orelse)):
            if cond is None and not body:
                continue
            lone = len(body) == 1 and isinstance(body[0], (ir.Return, ir.Break, ir.Continue))
            run_body = self.retire(body[0]) if lone else self.block(body)
            arms.append((None if cond is None else compile_expr(cond), run_body, lone))
        names = _assigned([node])
        last = len(arms) - 1

        def if_(lanes: Lanes, run: _Run) -> None:
            n = lanes.n
            rest = lanes.active  # lanes no branch took yet (None: all)
            for i, (cond, body, lone) in enumerate(arms):
                if cond is None:
                    taken = np.ones(n, np.bool_) if rest is None else rest
                else:
                    c = cond(lanes)
                    if np.ndim(c) == 0:
                        c = np.full(n, bool(c))
                    taken = c if rest is None else c & rest
                k = int(np.count_nonzero(taken))
                if k == 0:
                    continue
                if i < last:
                    rest = ~taken if rest is None else rest & ~taken
                if lone:
                    body(lanes, taken)
                elif k == lanes.alive:
                    body(lanes, run)
                else:
                    rows = np.flatnonzero(taken)
                    sub = lanes.take(rows)
                    body(sub, run)
                    _scatter(lanes, sub, rows, names)
                    if sub.active is not None:
                        act = lanes.active
                        mask = np.ones(n, np.bool_) if act is None else act.copy()
                        mask[rows] = sub.active
                        lanes.set_active(mask)
                    lanes.protect = lanes.protect or sub.protect
                if lanes.alive == 0 or i == last or not rest.any():
                    return

        return if_

    def s_while(self, node: ir.While) -> Step:
        cond, body = compile_expr(node.cond), self.block(node.body)
        steps = f"$steps{node.frame}"
        names = _assigned(node.body)
        private, returned = node.private, _RETURN + node.frame
        kept = names - private  # what a lane returning from the frame still needs
        nested = any(isinstance(s, (ir.While, ir.If, ir.For)) for s in node.body)
        revives = _has_continue(node.body)
        touched = _touched(node.body, set())
        _expr_names(node.cond, touched)
        emits = "$emit" in touched

        def uses(name: str) -> bool:
            if name.startswith(("$p", "$seq")):
                return emits
            return name in touched or name.startswith("$")

        def while_(outer: Lanes, run: _Run) -> None:
            rows = outer.live()
            entry = outer.active
            own = {k: v for k, v in outer.vars.items() if uses(k)}
            w = Lanes(own, outer.n, outer.depth)
            if rows is not None:
                w = w.take(rows)
            pos = rows
            it, base = 0, int(w.vars[steps].max())

            def leave(mask: np.ndarray) -> None:
                """Copy the state of the lanes of *mask*, which stop iterating, to *outer*."""
                p = np.flatnonzero(mask)
                ex = w.vars.get("$exit")
                if private and ex is not None:
                    back = ex[p] == returned
                    if back.any():
                        if not back.all():
                            copy(p[~back], names)
                            p = p[back]
                        copy(p, kept)
                        return
                copy(p, names)

            def copy(p: np.ndarray, names: set[str]) -> None:
                tgt = p if pos is None else pos[p]
                for name, arr in w.vars.items():
                    if name in names or hidden(name):
                        dst = outer.vars.get(name)
                        if dst is None:
                            dst = outer.vars[name] = np.zeros(outer.n, arr.dtype)
                        if dst is not arr or name == steps or name == "$exit":
                            dst[tgt] = arr[p]
                outer.vars[steps][tgt] = w.vars[steps][p] + it
                ex = outer.vars.get("$exit")
                if ex is not None:
                    codes = ex[tgt]
                    ex[tgt] = np.where(codes == _BREAK, 0, codes)

            running = w.n
            while True:
                c = cond(w)
                if np.ndim(c) == 0:
                    c = np.full(w.n, bool(c))
                if w.active is not None:
                    c = c & w.active
                alive = int(np.count_nonzero(c))
                if alive < running:
                    leave(~c if w.active is None else w.active & ~c)
                if alive == 0:
                    break
                if base + it + 1 > run.budget:
                    if int(w.vars[steps][c].max()) + it + 1 > run.budget:
                        raise Fallback(_BUDGET)
                if alive < run.compact_below * w.n:
                    keep = np.flatnonzero(c)
                    w = w.take(keep)
                    pos = keep if pos is None else pos[keep]
                    c = np.ones(w.n, np.bool_)
                w.active, w.alive = (None if alive == w.n else c), alive
                w.protect = False
                body(w, run)
                it += 1
                if nested:
                    base = max(base, int(w.vars[steps].max()))
                if w.alive != alive:
                    if revives:
                        ex = w.vars["$exit"]
                        cont = c & (ex == _CONTINUE)
                        if cont.any():
                            ex[cont] = 0
                            w.set_active(w.active | cont)
                    if w.active is not None:
                        out = c & ~w.active
                        if out.any():
                            leave(out)
                running = w.alive
            ex = outer.vars.get("$exit")
            if ex is not None:
                still = ex == 0
                outer.set_active(still if entry is None else entry & still)

        return while_

    def s_for(self, node: ir.For) -> Step:
        start, stop, body = compile_expr(node.start), compile_expr(node.stop), self.block(node.body)
        floats = "float" in (node.start.type, node.stop.type)
        var, steps, inclusive = node.var, f"$steps{node.frame}", node.inclusive
        counts_steps = any(isinstance(s, (ir.While, ir.If)) for s in node.body)

        def bound(v: Any, lanes: Lanes, rows: np.ndarray | None) -> tuple[np.ndarray, Any]:
            v = np.broadcast_to(v, (lanes.n,))
            v = v if rows is None else v[rows]
            if not floats:
                return v.astype(np.int64), None
            finite = np.isfinite(v)
            check(np.abs(np.where(finite, v, 0.0)) >= _BOUND, lanes, "range bound beyond 2**62")
            return np.trunc(np.where(finite, v, 0.0)).astype(np.int64), finite

        def for_(lanes: Lanes, run: _Run) -> None:
            rows = lanes.live()
            a, fa = bound(start(lanes), lanes, rows)
            b, fb = bound(stop(lanes), lanes, rows)
            span = b - a + (1 if inclusive else 0)
            if fa is not None:
                span[~(fa & fb)] = 0
            if len(span) and int(span.max()) > run.budget:
                raise Fallback(_LONG_RANGE)
            counts = np.maximum(span, 0)
            total = int(counts.sum())
            seq = lanes.vars["$seq"]
            if total:
                owner = np.repeat(np.arange(len(counts)), counts)
                child = lanes.take(owner if rows is None else rows[owner])
                d = 2 * lanes.depth
                child.depth += 1
                child.vars[f"$p{d}"] = child.vars.pop("$seq")
                child.vars[f"$p{d + 1}"] = np.arange(total, dtype=np.int64)
                child.vars["$seq"] = np.zeros(total, np.int64)
                child.vars[steps] = np.zeros(total, np.int64)
                first = np.cumsum(counts) - counts
                child.vars[var] = np.repeat(a - first, counts) + np.arange(total, dtype=np.int64)
                body(child, run)
                if counts_steps:
                    used = np.bincount(owner, weights=child.vars[steps], minlength=len(counts))
                    own = lanes.vars[steps]
                    if rows is None:
                        lanes.vars[steps] = own = own + used.astype(np.int64)
                    else:
                        own[rows] += used.astype(np.int64)
                    if int(own.max()) > run.budget:
                        raise Fallback(_BUDGET)
            if rows is None:
                seq += 1
            else:
                seq[rows] += 1

        return for_

    def s_emit(self, node: ir.Emit) -> Step:
        fields = [(name, compile_expr(e), isinstance(e, ir.Var)) for name, e in node.fields]
        site, kind = node.site, node.event_type

        def emit(lanes: Lanes, run: _Run) -> None:
            rows = lanes.live()
            m = lanes.n if rows is None else len(rows)
            columns: dict[str, np.ndarray] = {}
            for name, value, alias in fields:
                v = value(lanes)
                if np.ndim(v) == 0:
                    v = full(v, m)
                elif rows is not None:
                    v = v[rows]
                elif alias:
                    v = v.copy()
                columns[name] = v
            names = [f"$p{i}" for i in range(2 * lanes.depth)] + ["$seq"]
            keys = [lanes.vars[k] if rows is None else lanes.vars[k][rows] for k in names]
            run.chunks.append((site, kind, columns, [k.copy() for k in keys]))
            seq = lanes.vars["$seq"]
            if rows is None:
                seq += 1
            else:
                seq[rows] += 1

        return emit

    def s_frame(self, node: ir.Frame) -> Step:
        body, frame, result = self.block(node.body), node.frame, node.result
        ret, rset, steps = f"$ret{frame}", f"$rset{frame}", f"$steps{frame}"
        dtype = DTYPES.get(node.type or "int", np.int64)

        def frame_(lanes: Lanes, run: _Run) -> None:
            n = lanes.n
            lanes.vars[steps] = np.zeros(n, np.int64)
            if result is not None:
                lanes.vars[ret] = np.zeros(n, dtype)
                lanes.vars[rset] = np.zeros(n, np.bool_)
            body(lanes, run)
            ex = lanes.vars.get("$exit")
            if ex is not None:
                back = ex == _RETURN + frame
                if back.any():
                    ex[back] = 0
                    lanes.set_active(None if lanes.active is None else lanes.active | back)
            if result is not None:
                done = lanes.vars.pop(rset)
                check(~done, lanes, "function ended without a value")
                lanes.vars[result] = lanes.vars.pop(ret)
            lanes.vars.pop(steps)

        return frame_


class Kernel:
    """A compiled kernel: ``params`` ((name, type) pairs) and a body of IR statements.

    ``compact_below`` is the running fraction under which a ``while`` loop
    compacts its lanes (lower: fewer copies, more wasted arithmetic).
    """

    def __init__(
        self,
        params: Sequence[tuple[str, str]],
        body: Sequence[ir.Stmt],
        *,
        compact_below: float = 0.7,
    ) -> None:
        self.params = tuple(params)
        self.body = tuple(body)
        self.compact_below = compact_below
        self._run = _Compiler().block(self.body)

    def run(self, args: Sequence[Any], *, budget: int, timestamp: int = 0) -> list[ColumnarBatch]:
        """Execute one call with *args* (Python scalars of the declared types).

        Returns the emitted rows as batches (consecutive rows of one emit site
        share a batch), every row stamped *timestamp*. Raises :class:`Fallback`
        when the result would not be exact; nothing is kept from such a run.
        """
        variables = {
            name: np.full(1, arg, DTYPES[t])
            for (name, t), arg in zip(self.params, args, strict=True)
        }
        variables["$seq"] = np.zeros(1, np.int64)
        variables["$steps0"] = np.zeros(1, np.int64)
        run = _Run(budget, self.compact_below)
        with np.errstate(all="ignore"):
            self._run(Lanes(variables, 1, 0), run)
        return _assemble(run.chunks, timestamp)


def _assemble(chunks: list, timestamp: int) -> list[ColumnarBatch]:
    """Sort the emitted rows into sequential order; cut them into per-site runs."""
    if not chunks:
        return []
    if len(chunks) == 1:
        _, kind, columns, _ = chunks[0]
        return [ColumnarBatch(kind, columns, timestamp=timestamp)]
    width = max(len(keys) for *_, keys in chunks)
    sizes = [len(keys[0]) for *_, keys in chunks]
    key_cols = []
    for i in range(width):
        parts = [keys[i] if i < len(keys) else np.zeros(len(keys[0]), np.int64)
                 for *_, keys in chunks]  # fmt: skip
        key_cols.append(np.concatenate(parts))
    order = np.lexsort(key_cols[::-1])
    chunk_of = np.repeat(np.arange(len(chunks)), sizes)[order]
    row_of = np.concatenate([np.arange(s) for s in sizes])[order]
    sites = np.array([c[0] for c in chunks])[chunk_of]
    cuts = np.flatnonzero(sites[1:] != sites[:-1]) + 1
    batches = []
    for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(order)], strict=True):
        ids, rows = chunk_of[lo:hi], row_of[lo:hi]
        kind, names = chunks[ids[0]][1], list(chunks[ids[0]][2])
        members = np.unique(ids)
        if len(members) == 1:
            source = chunks[members[0]][2]
            columns = {k: source[k][rows] for k in names}
        else:
            offsets = np.zeros(len(chunks), np.int64)
            offsets[members] = np.cumsum([0] + [sizes[m] for m in members[:-1]])
            merged = {k: np.concatenate([chunks[m][2][k] for m in members]) for k in names}
            columns = {k: v[offsets[ids] + rows] for k, v in merged.items()}
        batches.append(ColumnarBatch(kind, columns, timestamp=timestamp))
    return batches
