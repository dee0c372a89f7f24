"""The sequence matcher: compiled sequence specs and the runs that match them (DESIGN §4.1.12).

A :class:`SequenceSpec` (built by :func:`varpulis.runtime.patterns.compile_sequence`) is
an OR of alternatives; an alternative is an AND of branches (one branch for a plain
``A -> B`` chain or ``SEQ(...)``); a branch is a tuple of :class:`Step` (type, alias,
compiled predicate, quantifier ``''``/``+``/``*``/``?``, and the :class:`Guard` of any
``NOT X`` written just before it). :class:`SequenceMatcher` turns each alternative into
a small deterministic automaton whose states are the tuples of branch positions, and
keeps *runs* (a state, the captures so far, a deadline) per partition, indexed by the
event types their state reacts to, so an event touches only the runs that can use it.
Per event, in this order: the matcher clock (the largest timestamp seen, in ns) moves
on; in the event's partition, negations kill the runs they match, runs whose deadline
(first event's timestamp + ``within_ns``) is before the clock are dropped, every other
run reacting to the type takes its first matching move (or skips the event); then each
alternative whose first step the event matches starts one new run. A run that reaches
an accepting state yields a :class:`Match` and is removed, unless it is a one-branch run
whose last step is repeatable (``+``/``*``): it stays and matches again on every further
element. Matches completing on one event come in run-creation order. Moves prefer the
furthest step (non-greedy: a Kleene or optional step yields to the step after it). A
predicate raising :class:`~varpulis.errors.VPLRuntimeError` counts as false; it is
logged and counted in ``errors``. At most ``max_runs`` runs live per partition: the
oldest is dropped and counted in ``dropped_runs``. A matcher is not thread-safe: one
matcher belongs to one engine thread; a spec is immutable and may be shared.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from varpulis.compiler.evalctx import EvalContext
from varpulis.compiler.values import display
from varpulis.errors import VPLRuntimeError, VPLSemanticError
from varpulis.events import Event
from varpulis.lang import ast

__all__ = [
    "MAX_RUNS",
    "MAX_STATES",
    "MISSING_KEY",
    "Guard",
    "Match",
    "Predicate",
    "SequenceMatcher",
    "SequenceSpec",
    "Step",
    "partition_key",
]

logger = logging.getLogger(__name__)

#: A compiled step filter: ``pred(fields, ctx) -> bool`` (see ``compile_predicate``).
Predicate = Callable[[dict, EvalContext], bool]
#: Default cap of live runs per partition; the oldest run makes room for a new one.
MAX_RUNS = 10_000
#: Cap on automaton states of one alternative (an AND multiplies its branches' lengths).
MAX_STATES = 4096
_FOREVER = float("inf")
_NO_CAPTURES: dict[str, Any] = {}  # read-only: what first steps see
_SET, _NEW_LIST, _APPEND = 0, 1, 2
_first_id = itemgetter(0)


class _MissingKey:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING_KEY"


#: The partition of events that lack the partition field (distinct from every value).
MISSING_KEY: Any = _MissingKey()


def partition_key(value: Any) -> Any:
    """The partition a field *value* belongs to: its display form (``1`` and ``1.0``
    share ``"1"``, as ``"1"`` does; ``true``, ``null``...), MISSING_KEY for no value."""
    if type(value) is str or value is MISSING_KEY:
        return value
    try:
        return display(value)
    except VPLRuntimeError:  # an int too large to print
        return repr(value)


@dataclass(frozen=True, slots=True)
class Guard:
    """A negation: an event of ``event_type`` satisfying ``predicate`` (None: any such
    event) kills runs. ``uses_captures``: the predicate reads sequence aliases, so it is
    evaluated per run (else once per event, killing the whole partition)."""

    event_type: str
    predicate: Predicate | None = None
    uses_captures: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a branch. ``quant``: ``''`` one, ``'+'`` one or more, ``'*'`` zero or
    more, ``'?'`` zero or one; ``guards``: the ``NOT`` items just before it, which kill
    a run that is waiting for this step."""

    event_type: str
    alias: str | None = None
    predicate: Predicate | None = None
    quant: str = ""
    guards: tuple[Guard, ...] = ()


@dataclass(frozen=True, slots=True)
class SequenceSpec:
    """What a sequence stream matches; see the module docstring.

    ``alternatives``: OR of AND of branches of steps. ``negations``: the stream's
    ``.not(...)`` guards, active on every run. ``within_ns``: the run lifetime in
    event-time nanoseconds (None: unbounded). ``partition_by``: the field whose value
    partitions the runs. ``rest``: the stream operations the matcher did not consume,
    in written order, for the engine to run on each match. ``event_types`` (derived):
    every step, guard and negation type, in order of first appearance.
    """

    name: str
    alternatives: tuple[tuple[tuple[Step, ...], ...], ...]
    negations: tuple[Guard, ...] = ()
    within_ns: int | None = None
    partition_by: str | None = None
    rest: tuple[ast.Op, ...] = ()
    event_types: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        names = [s.event_type for s in self.steps]
        names += [g.event_type for s in self.steps for g in s.guards]
        names += [g.event_type for g in self.negations]
        object.__setattr__(self, "event_types", tuple(dict.fromkeys(names)))

    @property
    def steps(self) -> tuple[Step, ...]:
        """Every step of every branch of every alternative, in written order."""
        return tuple(s for alt in self.alternatives for branch in alt for s in branch)


@dataclass(slots=True)
class Match:
    """One completed match: ``captures`` maps each alias to its event (a list of events,
    latest last, for ``+``/``*`` steps; absent optional steps have no entry) and
    ``last`` is the event that completed it. Owned by the receiver: never mutated later."""

    captures: dict[str, Event | list[Event]]
    last: Event


# ------------------------------------------------------------------ the automaton


class _Move:
    __slots__ = ("alias", "kind", "predicate", "target")

    def __init__(self, step: Step, kind: int, target: _State) -> None:
        self.predicate, self.alias = step.predicate, step.alias
        self.kind, self.target = kind, target


class _State:
    __slots__ = ("accepting", "keep", "kills", "moves", "types")

    def __init__(self) -> None:
        self.moves: dict[str, tuple[_Move, ...]] = {}
        self.kills: dict[str, tuple[Predicate | None, ...]] = {}
        self.types: tuple[str, ...] = ()
        self.accepting = self.keep = False


def _candidates(quants: tuple[str, ...], pos: int) -> list[int]:
    """Steps the next event may match from *pos* (-1: nothing yet), preferred first."""
    out = []
    j = pos + 1
    while j < len(quants):
        out.append(j)
        if quants[j] in ("", "+"):
            break
        j += 1
    out.reverse()  # non-greedy: the furthest step wins, optional ones yield to it
    if pos >= 0 and quants[pos] in ("+", "*"):
        out.append(pos)  # repeating the current Kleene step comes last
    return out


def _accepting(quants: tuple[str, ...], pos: int) -> bool:
    return all(q in ("*", "?") for q in quants[pos + 1 :])


def _build(branches: tuple[tuple[Step, ...], ...], negations: tuple[Guard, ...]) -> _State:
    """Build an alternative's automaton; return its initial (never occupied) state."""
    quants = tuple(tuple(s.quant for s in branch) for branch in branches)
    per_run = tuple(g for g in negations if g.uses_captures)
    states: dict[tuple[int, ...], _State] = {}
    pending: list[tuple[int, ...]] = []

    def state(pos: tuple[int, ...]) -> _State:
        found = states.get(pos)
        if found is None:
            if len(states) >= MAX_STATES:
                message = f"pattern needs more than {MAX_STATES} states; split the AND"
                raise VPLSemanticError(message)
            found = states[pos] = _State()
            pending.append(pos)
        return found

    initial = state((-1,) * len(branches))
    while pending:
        pos = pending.pop()
        st = states[pos]
        acc = [_accepting(quants[b], p) for b, p in enumerate(pos)]
        st.accepting = all(acc)
        st.keep = st.accepting and len(branches) == 1 and quants[0][-1] in ("+", "*")
        moves: dict[str, list[_Move]] = {}
        kills: dict[str, list[Predicate | None]] = {}
        order = [b for b in range(len(pos)) if not acc[b]] + [b for b in range(len(pos)) if acc[b]]
        for b in order:
            p = pos[b]
            for j in _candidates(quants[b], p):
                step = branches[b][j]
                kind = _APPEND if j == p else _NEW_LIST if step.quant in ("+", "*") else _SET
                target = state(pos[:b] + (j,) + pos[b + 1 :])
                moves.setdefault(step.event_type, []).append(_Move(step, kind, target))
                if j != p:
                    for guard in step.guards:
                        kills.setdefault(guard.event_type, []).append(guard.predicate)
        for guard in per_run:
            kills.setdefault(guard.event_type, []).append(guard.predicate)
        st.moves = {t: tuple(m) for t, m in moves.items()}
        st.kills = {t: tuple(k) for t, k in kills.items()}
        st.types = tuple(dict.fromkeys([*moves, *kills]))
    return initial


# ------------------------------------------------------------------------ runs


class _Run:
    __slots__ = ("captures", "deadline", "id", "state")

    def __init__(self, run_id: int, state: _State, captures: dict, deadline: float) -> None:
        self.id, self.state, self.captures, self.deadline = run_id, state, captures, deadline


class _Partition:
    __slots__ = ("index", "runs")

    def __init__(self) -> None:
        self.runs: dict[_Run, None] = {}  # creation order: the first is the oldest
        self.index: dict[str, dict[_Run, None]] = {}  # event type -> runs reacting to it


def _snapshot(captures: dict[str, Any]) -> dict[str, Any]:
    return {k: v.copy() if type(v) is list else v for k, v in captures.items()}


class SequenceMatcher:
    """Match one :class:`SequenceSpec` against events pushed in order (module docstring).

    ``dropped_runs`` counts runs evicted by the per-partition cap ``max_runs``;
    ``errors`` counts predicate evaluations that raised a VPL runtime error.
    """

    def __init__(self, spec: SequenceSpec, *, max_runs: int = MAX_RUNS) -> None:
        if max_runs < 1:
            message = f"max_runs must be at least 1, got {max_runs!r}"
            raise ValueError(message)
        self.spec = spec
        self.max_runs = max_runs
        self.dropped_runs = 0
        self.errors = 0
        self._types = frozenset(spec.event_types)
        self._field = spec.partition_by
        self._within = _FOREVER if spec.within_ns is None else spec.within_ns
        starts: dict[str, list[tuple[_Move, ...]]] = {}
        for branches in spec.alternatives:
            for event_type, moves in _build(branches, spec.negations).moves.items():
                starts.setdefault(event_type, []).append(moves)
        self._starts = {t: tuple(m) for t, m in starts.items()}
        wholesale: dict[str, list[Predicate | None]] = {}
        for guard in spec.negations:
            if not guard.uses_captures:
                wholesale.setdefault(guard.event_type, []).append(guard.predicate)
        self._wholesale = {t: tuple(p) for t, p in wholesale.items()}
        self._parts: dict[Any, _Partition] = {}
        self._clock: float = -_FOREVER
        self._ctx = EvalContext()
        self._next_id = 0
        self._until_sweep = 1024

    @property
    def active_runs(self) -> int:
        """How many runs are alive (expired ones may count until swept)."""
        return sum(len(p.runs) for p in self._parts.values())

    @property
    def clock(self) -> float:
        """The largest event time seen (ns; -inf before any event)."""
        return self._clock

    def advance_clock(self, timestamp: float) -> None:
        """Move the clock on to *timestamp* (never back): events seen elsewhere."""
        if timestamp > self._clock:
            self._clock = timestamp

    def live_captures(self) -> list[dict[str, Any]]:
        """The captures of every run still alive, oldest first (read only)."""
        clock = self._clock
        found = [run for part in self._parts.values() for run in part.runs
                 if run.deadline >= clock]  # fmt: skip
        found.sort(key=lambda run: run.id)
        return [run.captures for run in found]

    def clear_runs(self) -> None:
        """Drop every run (the clock and counters stay)."""
        self._parts.clear()

    def push(self, event: Event) -> list[Match]:
        """Feed one event; return the matches it completes, in run-creation order."""
        event_type = event.event_type
        if event_type not in self._types:
            return []
        if event.timestamp > self._clock:
            self._clock = event.timestamp
        if self._field is None:
            key = None
        else:
            key = partition_key(event.fields.get(self._field, MISSING_KEY))
        self._ctx.event = event
        part = self._parts.get(key)
        found = None if part is None or not part.runs else self._advance(part, event, event_type)
        starts = self._starts.get(event_type)
        if starts is not None:
            for moves in starts:
                for move in moves:
                    if move.predicate is None or self._test(move.predicate, event, _NO_CAPTURES):
                        if part is None:
                            part = self._parts[key] = _Partition()
                        match = self._begin(part, move, event)
                        if match is not None:
                            found = found or []
                            found.append((self._next_id - 1, match))
                        break
        if part is not None:
            runs = part.runs
            if runs and self._within != _FOREVER and next(iter(runs)).deadline < self._clock:
                self._expire_oldest(part)
            # The unpartitioned runs keep their one partition: no churn between matches.
            if not runs and key is not None:
                del self._parts[key]
        if self._within != _FOREVER:
            self._until_sweep -= 1
            if self._until_sweep <= 0:
                self.sweep()
        if not found:
            return []
        if len(found) == 1:
            return [found[0][1]]
        return [match for _, match in found]

    def sweep(self) -> None:
        """Drop expired runs (oldest first, per partition) and forget empty partitions."""
        for key, part in list(self._parts.items()):
            self._expire_oldest(part)
            if not part.runs and key is not None:
                del self._parts[key]
        self._until_sweep = max(1024, len(self._parts))

    # ----------------------------------------------------------------- internals

    def _test(self, predicate: Predicate, event: Event, captures: dict) -> bool:
        ctx = self._ctx
        ctx.captures = captures
        try:
            return predicate(event.fields, ctx) is True
        except VPLRuntimeError as exc:
            self._failed(exc)
            return False

    def _kills(self, kills: tuple[Predicate | None, ...], fields: dict, captures: dict) -> bool:
        ctx = self._ctx
        ctx.captures = captures
        for predicate in kills:
            if predicate is None:
                return True
            try:
                if predicate(fields, ctx) is True:
                    return True
            except VPLRuntimeError as exc:
                self._failed(exc)
        return False

    def _failed(self, exc: VPLRuntimeError) -> None:
        self.errors += 1
        logger.warning("sequence %s: %s (counted as no match)", self.spec.name, exc)

    def _advance(self, part: _Partition, event: Event, event_type: str) -> list | None:
        wholesale = self._wholesale.get(event_type)
        if wholesale is not None:
            for predicate in wholesale:
                if predicate is None or self._test(predicate, event, _NO_CAPTURES):
                    part.runs.clear()
                    part.index.clear()
                    return None
        bucket = part.index.get(event_type)
        if not bucket:
            return None
        clock = self._clock
        ctx, fields = self._ctx, event.fields
        doomed = moved = None
        for run in bucket:
            if run.deadline < clock:
                doomed = doomed or []
                doomed.append(run)
                continue
            state = run.state
            kills = state.kills.get(event_type)
            if kills is not None and self._kills(kills, fields, run.captures):
                doomed = doomed or []
                doomed.append(run)
                continue
            moves = state.moves.get(event_type)
            if moves is None:
                continue
            for move in moves:
                predicate = move.predicate
                if predicate is not None:  # inlined _test: this is the per-run hot path
                    ctx.captures = run.captures
                    try:
                        if predicate(fields, ctx) is not True:
                            continue
                    except VPLRuntimeError as exc:
                        self._failed(exc)
                        continue
                moved = moved or []
                moved.append((run, move))
                break
        if doomed is not None:
            for run in doomed:
                self._unlink(part, run)
        if moved is None:
            return None
        found = None
        for run, move in moved:
            match = self._apply(part, run, move, event)
            if match is not None:
                found = found or []
                found.append((run.id, match))
        if found is not None and len(found) > 1:
            found.sort(key=_first_id)  # buckets are not in creation order
        return found

    def _apply(self, part: _Partition, run: _Run, move: _Move, event: Event) -> Match | None:
        captures = run.captures
        alias = move.alias
        if alias is not None:
            if move.kind == _APPEND:
                captures[alias].append(event)
            elif move.kind == _NEW_LIST:
                captures[alias] = [event]
            else:
                captures[alias] = event
        target = move.target
        if target.accepting and not target.keep:
            self._unlink(part, run)
            return Match(captures, event)
        old = run.state
        if target is not old:
            index = part.index
            for event_type in old.types:
                index[event_type].pop(run, None)
            for event_type in target.types:
                bucket = index.get(event_type)
                if bucket is None:
                    index[event_type] = {run: None}
                else:
                    bucket[run] = None
            run.state = target
        return Match(_snapshot(captures), event) if target.accepting else None

    def _begin(self, part: _Partition, move: _Move, event: Event) -> Match | None:
        captures: dict[str, Any] = {}
        if move.alias is not None:
            captures[move.alias] = [event] if move.kind == _NEW_LIST else event
        run_id = self._next_id
        self._next_id += 1
        target = move.target
        if target.accepting and not target.keep:
            return Match(captures, event)
        runs = part.runs
        if len(runs) >= self.max_runs:
            self._expire_oldest(part)
            while len(runs) >= self.max_runs:
                self._unlink(part, next(iter(runs)))
                self.dropped_runs += 1
        run = _Run(run_id, target, captures, event.timestamp + self._within)
        runs[run] = None
        index = part.index
        for event_type in target.types:
            bucket = index.get(event_type)
            if bucket is None:
                index[event_type] = {run: None}
            else:
                bucket[run] = None
        return Match(_snapshot(captures), event) if target.accepting else None

    def _unlink(self, part: _Partition, run: _Run) -> None:
        del part.runs[run]
        index = part.index
        for event_type in run.state.types:
            index[event_type].pop(run, None)

    def _expire_oldest(self, part: _Partition) -> None:
        runs = part.runs
        clock = self._clock
        while runs:
            oldest = next(iter(runs))
            if oldest.deadline >= clock:
                return
            self._unlink(part, oldest)
