"""Sequences and named patterns (DESIGN §4.1.12): the spec's §2.7.4 examples under our
decisions, the run rules, partitions, event-time ``within``, negation, Kleene steps,
named patterns (``+ * ?``, NOT, AND, OR) and the run cap. Property tests against a
brute-force reference matcher: tests/runtime/test_nfa.py."""

from __future__ import annotations

from typing import Any

import pytest

from varpulis.compiler.evalctx import EvalContext
from varpulis.compiler.exprs import compile_expr
from varpulis.compiler.functions import compile_toplevel
from varpulis.compiler.scope import Scope
from varpulis.compiler.values import MISSING
from varpulis.errors import VPLSemanticError
from varpulis.events import Event
from varpulis.lang import ast, parse
from varpulis.runtime.patterns import (
    MAX_RUNS,
    Match,
    SequenceMatcher,
    SequenceSpec,
    compile_sequence,
)

S = 1_000_000_000  # one second in ns


def compile_last(source: str) -> tuple[SequenceSpec | None, Scope]:
    """Compile the last stream of *source* with the program's patterns."""
    program = parse(source)
    scope = Scope(source=source)
    compile_toplevel(program.decls, scope)
    patterns = {d.name: d for d in program.decls if isinstance(d, ast.PatternDecl)}
    stream = [d for d in program.decls if isinstance(d, ast.StreamDecl)][-1]
    return compile_sequence(stream, scope, patterns), scope


class Seq:
    """A compiled sequence stream plus a tiny ``.emit`` evaluator standing in for the engine."""

    def __init__(self, source: str, **options: Any) -> None:
        spec, scope = compile_last(source)
        assert spec is not None
        self.spec = spec
        self.matcher = SequenceMatcher(spec, **options)
        aliases = {s.alias for s in spec.steps if s.alias}
        view = scope.with_aliases(aliases)
        emit = [op for op in spec.rest if op.name == "emit"]
        self.emit = [(k, compile_expr(v, view)) for op in emit for k, v in op.kwargs]
        self.clock = 0

    def push(self, event_type: str, at: int | None = None, **fields: Any) -> list[Match]:
        """Push one event; *at* is its timestamp in seconds (default: one more than the last)."""
        self.clock = self.clock + S if at is None else at * S
        return self.matcher.push(Event(event_type, fields, self.clock))

    def out(self, match: Match) -> dict[str, Any]:
        ctx = EvalContext(match.last, captures=match.captures)
        values = ((k, f(match.last.fields, ctx)) for k, f in self.emit)
        return {k: v for k, v in values if v is not MISSING}

    def run(self, *events: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.out(m) for t, f in events for m in self.push(t, **f)]


def caps(match: Match) -> dict[str, Any]:
    """Captures as field dicts (lists for Kleene aliases), for short assertions."""
    return {
        k: [e.fields for e in v] if isinstance(v, list) else v.fields
        for k, v in match.captures.items()
    }


# ------------------------------------------------------------- §2.7.4 examples

PAID = """
stream Paid = Order as o
    -> Payment where order_id == o.id as p
    .emit(order: o.id, amount: p.amount)
"""


def test_paid() -> None:
    out = Seq(PAID).run(
        ("Order", {"id": 1}),
        ("Order", {"id": 2}),
        ("Payment", {"order_id": 2, "amount": 50.0}),
        ("Payment", {"order_id": 1, "amount": 10.0}),
        ("Payment", {"order_id": 1, "amount": 99.0}),
    )
    assert out == [{"order": 2, "amount": 50.0}, {"order": 1, "amount": 10.0}]


def test_paid_equality_promotes_int_and_float() -> None:
    out = Seq(PAID).run(("Order", {"id": 1}), ("Payment", {"order_id": 1.0, "amount": 3.0}))
    assert out == [{"order": 1, "amount": 3.0}]


GUARDED = """
stream Guarded = Order as o
    -> Payment where order_id == o.id as p
    .not(Cancel where order_id == o.id)
    .emit(status: "paid", order: o.id)
"""


def test_guarded() -> None:
    cancelled = Seq(GUARDED).run(
        ("Order", {"id": 1}), ("Cancel", {"order_id": 1}), ("Payment", {"order_id": 1})
    )
    assert cancelled == []
    other = Seq(GUARDED).run(
        ("Order", {"id": 1}), ("Cancel", {"order_id": 2}), ("Payment", {"order_id": 1})
    )
    assert other == [{"status": "paid", "order": 1}]


def test_guarded_cancel_kills_only_the_runs_it_matches() -> None:
    seq = Seq(GUARDED)
    seq.run(("Order", {"id": 1}), ("Order", {"id": 2}), ("Cancel", {"order_id": 1}))
    assert seq.matcher.active_runs == 1
    assert seq.run(("Payment", {"order_id": 2}), ("Payment", {"order_id": 1})) == [
        {"status": "paid", "order": 2}
    ]


BURST = """
stream Burst = Start as s
    -> all Tick where price > 100 as t
    -> End as e
    .emit(first: s.id, last_price: t.price, ticks: len(t), end: e.id)
"""


def test_burst() -> None:
    out = Seq(BURST).run(
        ("Start", {"id": 1}),
        ("Tick", {"price": 90}),
        ("Tick", {"price": 101.5}),
        ("Tick", {"price": 120}),
        ("End", {"id": 9}),
    )
    assert out == [{"first": 1, "last_price": 120, "ticks": 2, "end": 9}]


def test_burst_needs_at_least_one_tick() -> None:
    assert Seq(BURST).run(("Start", {"id": 1}), ("End", {"id": 9})) == []
    # the End before any tick is skipped; the run waits for a tick, then an End
    out = Seq(BURST).run(
        ("Start", {"id": 1}), ("End", {"id": 8}), ("Tick", {"price": 101}), ("End", {"id": 9})
    )
    assert out == [{"first": 1, "last_price": 101, "ticks": 1, "end": 9}]


EACH = "stream Each = A as a -> all B as b .emit(v: b.v, n: len(b))"


def test_each_has_no_final_kleene_refire() -> None:
    # The original prints 1, 2, 2, 3 (the second A re-completes the parked run). Ours:
    # run 1 matches per B (1, 2, 3); the second A starts run 2, which B3 matches too.
    out = Seq(EACH).run(("A", {}), ("B", {"v": 1}), ("B", {"v": 2}), ("A", {}), ("B", {"v": 3}))
    assert out == [{"v": 1, "n": 1}, {"v": 2, "n": 2}, {"v": 3, "n": 3}, {"v": 3, "n": 1}]


def test_each_final_kleene_captures_grow_and_matches_are_snapshots() -> None:
    seq = Seq(EACH)
    seq.push("A")
    first = seq.push("B", v=1)
    second = seq.push("B", v=2)
    assert caps(first[0]) == {"a": {}, "b": [{"v": 1}]}
    assert caps(second[0]) == {"a": {}, "b": [{"v": 1}, {"v": 2}]}


AB = 'stream AB = A -> B .emit(status: "ab")'


def test_ab() -> None:
    assert Seq(AB).run(("A", {}), ("A", {}), ("B", {})) == [{"status": "ab"}] * 2
    assert Seq(AB).run(("B", {}), ("A", {})) == []


def test_fast_within() -> None:
    src = "stream Fast = Request as r -> Response where req_id == r.id .within(5s) .emit(id: r.id)"
    assert Seq(src).run(("Request", {"id": 1}), ("Response", {"req_id": 1})) == [{"id": 1}]


# ------------------------------------------------------------------ run rules


def test_one_match_per_run() -> None:
    seq = Seq("stream S = A as a -> B as b .emit(a: a.n, b: b.n)")
    assert seq.run(("A", {"n": 1}), ("B", {"n": 1}), ("B", {"n": 2})) == [{"a": 1, "b": 1}]
    assert seq.matcher.active_runs == 0


def test_events_of_other_types_and_non_matching_events_never_break_a_run() -> None:
    seq = Seq("stream S = A as a -> B where v > a.v as b -> C .emit(b: b.v)")
    out = seq.run(
        ("A", {"v": 5}),
        ("Z", {}),
        ("C", {}),
        ("B", {"v": 1}),
        ("A", {"v": 99}),
        ("B", {"v": 6}),
        ("C", {}),
    )
    assert out == [{"b": 6}]


def test_same_event_matches_come_in_run_creation_order() -> None:
    # run 2 reaches the C-waiting state before run 1, so the C bucket holds it first
    seq = Seq("stream S = A as a -> all B where v > a.v as b -> C .emit(a: a.v)")
    out = seq.run(
        ("A", {"v": 5}),
        ("A", {"v": 0}),
        ("B", {"v": 1}),
        ("B", {"v": 6}),
        ("C", {}),
    )
    assert out == [{"a": 5}, {"a": 0}]


def test_a_run_starts_after_existing_runs_advanced_on_the_same_event() -> None:
    seq = Seq("stream S = A as x -> A as y .emit(x: x.n, y: y.n)")
    out = seq.run(("A", {"n": 1}), ("A", {"n": 2}), ("A", {"n": 3}))
    assert out == [{"x": 1, "y": 2}, {"x": 2, "y": 3}]


def test_middle_kleene_is_non_greedy() -> None:
    seq = Seq("stream S = A -> all B as b -> B where v > 10 as c .emit(n: len(b), c: c.v)")
    # B(20) right after A fills the Kleene (it needs one); B(30) then completes
    assert seq.run(("A", {}), ("B", {"v": 20}), ("B", {"v": 30})) == [{"n": 1, "c": 30}]
    seq = Seq("stream S = A -> all B as b -> B where v > 10 as c .emit(n: len(b), c: c.v)")
    out = seq.run(("A", {}), ("B", {"v": 1}), ("B", {"v": 2}), ("B", {"v": 20}), ("B", {"v": 3}))
    assert out == [{"n": 2, "c": 20}]


def test_final_kleene_is_not_refired_by_other_routed_events() -> None:
    seq = Seq("stream S = A -> all B where v > 0 as b .not(C where v == 1) .emit(v: b.v)")
    out = seq.run(("A", {}), ("B", {"v": 1}), ("B", {"v": 0}), ("C", {"v": 2}), ("A", {}))
    assert out == [{"v": 1}]
    assert seq.matcher.active_runs == 2


def test_own_alias_is_not_visible_in_its_own_filter() -> None:
    seq = Seq("stream S = A -> B where b.x > 1 as b .emit(x: b.x)")
    assert seq.run(("A", {}), ("B", {"x": 5})) == []
    seq = Seq("stream S = A -> all B where b.x > 1 as b .emit(x: b.x)")
    assert seq.run(("A", {}), ("B", {"x": 5}), ("B", {"x": 6})) == []


def test_unaliased_steps_are_not_captured() -> None:
    seq = Seq("stream S = A -> B as b -> C")
    seq.push("A")
    seq.push("B", n=1)
    (match,) = seq.push("C", n=2)
    assert caps(match) == {"b": {"n": 1}}
    assert match.last.fields == {"n": 2}


# --------------------------------------------------------------- partitions


def test_partition_by_isolates_runs() -> None:
    seq = Seq("stream S = A as a -> B as b .partition_by(k) .emit(a: a.n, b: b.n)")
    out = seq.run(
        ("A", {"k": "x", "n": 1}),
        ("A", {"k": "y", "n": 2}),
        ("B", {"k": "y", "n": 3}),
        ("B", {"n": 4}),
        ("B", {"k": "x", "n": 5}),
    )
    assert out == [{"a": 2, "b": 3}, {"a": 1, "b": 5}]
    assert seq.spec.partition_by == "k"


def test_events_lacking_the_key_share_their_own_partition() -> None:
    seq = Seq("stream S = A as a .partition_by(k) -> B as b .emit(a: a.n, b: b.n)")
    out = seq.run(
        ("A", {"n": 1}),
        ("B", {"k": "", "n": 2}),
        ("B", {"k": None, "n": 3}),
        ("B", {"n": 4}),
    )
    assert out == [{"a": 1, "b": 4}]


def test_partition_keys_follow_the_display_form() -> None:
    seq = Seq("stream S = A as a -> B as b .partition_by(k) .emit(b: b.n)")
    assert seq.run(("A", {"k": 1}), ("B", {"k": 1.0, "n": 1})) == [{"b": 1}]
    assert seq.run(("A", {"k": True}), ("B", {"k": 1, "n": 2})) == []


def test_negation_only_touches_its_partition() -> None:
    seq = Seq(GUARDED.replace(".emit", ".partition_by(region) .emit"))
    out = seq.run(
        ("Order", {"id": 1, "region": "eu"}),
        ("Order", {"id": 1, "region": "us"}),
        ("Cancel", {"order_id": 1, "region": "eu"}),
        ("Payment", {"order_id": 1, "region": "eu"}),
        ("Payment", {"order_id": 1, "region": "us"}),
    )
    assert out == [{"status": "paid", "order": 1}]


# ------------------------------------------------------------------- within

WITHIN = "stream S = A as a -> B as b .within(5s) .emit(a: a.n)"


def test_within_uses_event_time_and_is_inclusive() -> None:
    seq = Seq(WITHIN)
    seq.push("A", at=0, n=1)
    assert [seq.out(m) for m in seq.push("B", at=5)] == [{"a": 1}]
    seq = Seq(WITHIN)
    seq.push("A", at=0, n=1)
    assert seq.push("B", at=6) == []
    assert seq.matcher.active_runs == 0
    assert seq.spec.within_ns == 5 * S


def test_within_expires_runs_once_any_later_event_arrived() -> None:
    # the clock is the largest timestamp seen, so a late event cannot revive a run
    seq = Seq(WITHIN.replace(".emit", ".partition_by(k) .emit"))
    seq.push("A", at=0, k="x", n=1)
    seq.push("A", at=10, k="y", n=2)
    assert seq.push("B", at=3, k="x") == []
    assert [seq.out(m) for m in seq.push("B", at=11, k="y")] == [{"a": 2}]


def test_expired_runs_are_swept_from_idle_partitions() -> None:
    seq = Seq(WITHIN.replace(".emit", ".partition_by(k) .emit"))
    for i in range(50):
        seq.push("A", at=0, k=i, n=i)
    assert seq.matcher.active_runs == 50
    seq.push("A", at=100, k="other")
    seq.matcher.sweep()
    assert seq.matcher.active_runs == 1


def test_final_kleene_runs_end_with_within() -> None:
    seq = Seq("stream S = A -> all B as b .within(2s) .emit(n: len(b))")
    out = [
        seq.out(m) for t, at in [("A", 0), ("B", 1), ("B", 2), ("B", 3)] for m in seq.push(t, at)
    ]
    assert out == [{"n": 1}, {"n": 2}]


def test_within_of_a_constant() -> None:
    spec, _ = compile_last("const W = 3s\nstream S = A -> B .within(W)")
    assert spec is not None and spec.within_ns == 3 * S


# ----------------------------------------------------------------- negation


def test_negation_anywhere_in_the_chain() -> None:
    src = "stream S = A as a .not(X where id == a.id) -> B as b .emit(id: a.id)"
    assert Seq(src).run(("A", {"id": 1}), ("X", {"id": 1}), ("B", {})) == []
    assert Seq(src).run(("A", {"id": 1}), ("X", {"id": 2}), ("B", {})) == [{"id": 1}]


def test_negation_is_checked_before_runs_advance() -> None:
    seq = Seq("stream S = A -> B as b .not(B where v < 0) .emit(v: b.v)")
    assert seq.run(("A", {}), ("B", {"v": -1}), ("B", {"v": 1})) == []


def test_negation_does_not_touch_the_run_its_event_starts() -> None:
    seq = Seq("stream S = A as a -> B .not(A where v == 1) .emit(v: a.v)")
    assert seq.run(("A", {"v": 0}), ("A", {"v": 1}), ("B", {})) == [{"v": 1}]


def test_negation_without_aliases_clears_the_partition() -> None:
    seq = Seq("stream S = A as a -> B .not(Reset) .emit(v: a.v)")
    assert seq.spec.negations[0].uses_captures is False
    seq.run(("A", {"v": 0}), ("A", {"v": 0}), ("Reset", {}))
    assert seq.matcher.active_runs == 0
    assert seq.run(("A", {"v": 1}), ("A", {"v": 2}), ("Reset", {}), ("A", {"v": 3}), ("B", {})) == [
        {"v": 3}
    ]


# ------------------------------------------------------------ named patterns


def pattern(text: str, stream: str = ".emit(x: 1)") -> Seq:
    return Seq(f"pattern P = {text}\nstream S = P {stream}")


def test_named_seq_with_kleene_plus() -> None:
    # the example program: a rising run of ticks, then one above the last of them
    seq = pattern(
        "SEQ(T as a, T+ where price > a.price as b, T where price > b.price as c)",
        ".emit(start: a.price, n: len(b), peak: c.price)",
    )
    out = seq.run(("T", {"price": 10}), ("T", {"price": 11}), ("T", {"price": 12}))
    # T12 completes run 1 (b = [T11]) and run 2 is at b = [T12]; run 3 starts
    assert out == [{"start": 10, "n": 1, "peak": 12}]


def test_named_optional_items() -> None:
    seq = pattern("SEQ(A as a, B? as b, C as c)", ".emit(b: b.n, has: len(b))")
    assert seq.run(("A", {}), ("B", {"n": 1}), ("C", {})) == [{"b": 1, "has": 1}]
    seq = pattern("SEQ(A as a, B? as b, C as c)")
    seq.push("A")
    (match,) = seq.push("C")
    assert set(match.captures) == {"a", "c"}  # an absent optional has no entry
    seq = pattern("SEQ(A as a, B* as b, C as c)", ".emit(n: len(b))")
    assert seq.run(("A", {}), ("B", {}), ("B", {}), ("C", {})) == [{"n": 2}]
    assert seq.run(("A", {}), ("C", {})) == [{}]


def test_a_trailing_question_mark_is_never_waited_for() -> None:
    seq = pattern("SEQ(A as a, B? as b)", ".emit(b: b.n)")
    assert seq.run(("A", {}), ("B", {"n": 1})) == [{}]


def test_a_trailing_star_matches_without_and_with_each_element() -> None:
    seq = pattern("SEQ(A as a, B* as b)", ".emit(n: len(b))")
    assert seq.run(("A", {}), ("B", {}), ("B", {})) == [{}, {"n": 1}, {"n": 2}]


def test_optional_items_yield_to_the_next_item() -> None:
    seq = pattern("SEQ(A, B? as o, B as b)", ".emit(o: o.n, b: b.n)")
    assert seq.run(("A", {}), ("B", {"n": 1}), ("B", {"n": 2})) == [{"b": 1}]


def test_first_item_kleene_starts_a_run_per_element() -> None:
    seq = pattern("SEQ(A+ as a, B)", ".emit(n: len(a))")
    assert seq.run(("A", {}), ("A", {}), ("B", {})) == [{"n": 2}, {"n": 1}]


def test_single_item_pattern_matches_every_event() -> None:
    seq = pattern("A where v > 1 as a", ".emit(v: a.v)")
    assert seq.run(("A", {"v": 1}), ("A", {"v": 2})) == [{"v": 2}]
    assert seq.matcher.active_runs == 0


def test_not_between_seq_items() -> None:
    text = "SEQ(A as a, NOT X where id == a.id, B as b)"
    assert pattern(text).run(("A", {"id": 1}), ("X", {"id": 1}), ("B", {})) == []
    assert pattern(text).run(("A", {"id": 1}), ("X", {"id": 2}), ("B", {})) == [{"x": 1}]
    # an X after the guarded gap does not matter
    text = "SEQ(A as a, NOT X, B as b, C)"
    assert pattern(text).run(("A", {}), ("B", {}), ("X", {}), ("C", {})) == [{"x": 1}]
    assert pattern(text).run(("A", {}), ("X", {}), ("B", {}), ("C", {})) == []


def test_not_applies_while_the_next_item_is_reachable() -> None:
    text = "SEQ(A, B? as b, NOT X, C)"
    assert pattern(text).run(("A", {}), ("X", {}), ("B", {}), ("C", {})) == []
    text = "SEQ(A, B+ as b, NOT X, C)"
    assert pattern(text).run(("A", {}), ("X", {}), ("B", {}), ("C", {})) == [{"x": 1}]
    assert pattern(text).run(("A", {}), ("B", {}), ("X", {}), ("C", {})) == []


def test_not_before_a_kleene_item_guards_only_the_gap_before_its_first_element() -> None:
    text = "SEQ(A, NOT X, B+ as b, C)"
    assert pattern(text).run(("A", {}), ("X", {}), ("B", {}), ("C", {})) == []
    assert pattern(text).run(("A", {}), ("B", {}), ("X", {}), ("B", {}), ("C", {})) == [{"x": 1}]


def test_and_matches_both_sides_in_any_order() -> None:
    text = "SEQ(A as a, B as b) AND C as c"
    emit = ".emit(a: a.n, b: b.n, c: c.n)"
    one = {"a": 1, "b": 2, "c": 3}
    for order in (["A", "B", "C"], ["C", "A", "B"], ["A", "C", "B"]):
        seq = pattern(text, emit)
        n = {"A": 1, "B": 2, "C": 3}
        assert seq.run(*[(t, {"n": n[t]}) for t in order]) == [one]
    seq = pattern(text, emit)
    assert seq.run(("B", {"n": 2}), ("A", {"n": 1}), ("C", {"n": 3})) == []  # B before A


def test_and_matches_once_per_run() -> None:
    seq = pattern("A as a AND B as b", ".emit(a: a.n, b: b.n)")
    out = seq.run(("A", {"n": 1}), ("A", {"n": 2}), ("B", {"n": 3}), ("B", {"n": 4}))
    assert out == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]


def test_and_extends_a_finished_kleene_side_until_both_are_done() -> None:
    seq = pattern("SEQ(A, B+ as b) AND C", ".emit(n: len(b))")
    assert seq.run(("A", {}), ("B", {}), ("B", {}), ("C", {})) == [{"n": 2}]


def test_or_matches_either_side() -> None:
    seq = pattern("SEQ(A as a, B as b) OR C as c", ".emit(a: a.n, c: c.n)")
    out = seq.run(("A", {"n": 1}), ("C", {"n": 2}), ("B", {}))
    assert out == [{"c": 2}, {"a": 1}]


def test_or_of_and() -> None:
    seq = pattern("(A AND B) OR (C AND D)", ".emit(x: 1)")
    assert seq.run(("A", {}), ("D", {}), ("B", {}), ("C", {})) == [{"x": 1}, {"x": 1}]


def test_pattern_within_and_partition_and_stream_overrides() -> None:
    base = "pattern P = SEQ(A, B) within 10m partition by user\n"
    spec, _ = compile_last(base + "stream S = P .emit(x: 1)")
    assert spec is not None and (spec.within_ns, spec.partition_by) == (600 * S, "user")
    spec, _ = compile_last(base + "stream S = P .within(1s) .partition_by(k) .emit(x: 1)")
    assert spec is not None and (spec.within_ns, spec.partition_by) == (S, "k")
    assert [op.name for op in spec.rest] == ["emit"]


def test_stream_negation_on_a_pattern_source() -> None:
    seq = pattern("SEQ(A as a, B)", ".not(X where id == a.id) .emit(id: a.id)")
    assert seq.run(("A", {"id": 1}), ("X", {"id": 1}), ("B", {})) == []


# --------------------------------------------------------------- the spec


def test_spec_contents() -> None:
    spec, _ = compile_last(
        "stream S = A as a .where(v > 1) -> all B where w > a.v as b\n"
        "    .not(C) .within(1m) .partition_by(k) .where(b.v > 0) .emit(x: 1) .to(Out)"
    )
    assert spec is not None
    assert spec.event_types == ("A", "B", "C")
    assert [(s.event_type, s.alias, s.quant) for s in spec.steps] == [
        ("A", "a", ""),
        ("B", "b", "+"),
    ]
    assert all(s.predicate is not None for s in spec.steps)
    assert spec.within_ns == 60 * S and spec.partition_by == "k"
    assert [op.name for op in spec.rest] == ["where", "emit", "to"]


def test_a_leading_where_filters_the_first_step() -> None:
    seq = Seq("stream S = A as a .where(v > 1) -> B .emit(v: a.v)")
    assert seq.run(("A", {"v": 1}), ("A", {"v": 2}), ("B", {})) == [{"v": 2}]


def test_not_a_sequence() -> None:
    assert compile_last("stream S = A .where(x > 1) .emit(x: x)")[0] is None
    assert compile_last("stream S = A .not(B) .emit(x: 1)")[0] is None


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("pattern P = SEQ(A, B OR C)\nstream S = P", "OR inside"),
        ("pattern P = SEQ(A, B) AND (C OR D)\nstream S = P", "OR inside AND"),
        ("pattern P = SEQ(A, SEQ(B, C) AND D)\nstream S = P", "AND inside SEQ"),
        ("pattern P = SEQ(NOT X, A)\nstream S = P", "NOT cannot be the first"),
        ("pattern P = SEQ(A, NOT X)\nstream S = P", "NOT cannot be the last"),
        ("pattern P = SEQ(A, NOT X+, B)\nstream S = P", "NOT takes a single"),
        ("pattern P = SEQ(A, B)\nstream S = P -> C", "cannot take '->'"),
        ("stream S = A as x -> B as x", "bound twice"),
        ("pattern P = SEQ(A as x, B) AND C as x\nstream S = P", "bound twice"),
        ("stream S = A -> B .where(v > 1) -> C", "between the steps"),
        ("stream S = A -> B .emit(x: 1) -> C", "between the steps"),
        ('stream S = A -> B .within("5s")', "duration"),
        ("stream S = A -> B .within(5)", "duration"),
        ("stream S = A -> B .within(nope)", "duration"),
        ('stream S = A -> B .partition_by("k")', "field name"),
    ],
)
def test_unsupported_shapes_are_semantic_errors(source: str, words: str) -> None:
    with pytest.raises(VPLSemanticError, match=words):
        compile_last(source)


def test_duplicate_aliases_in_or_alternatives_are_fine() -> None:
    seq = pattern("SEQ(A as a, B) OR SEQ(C as a, D)", ".emit(n: a.n)")
    assert seq.run(("A", {"n": 1}), ("C", {"n": 2}), ("D", {}), ("B", {})) == [{"n": 2}, {"n": 1}]


# ------------------------------------------------------------------- the cap


def test_run_cap_drops_the_oldest_run() -> None:
    seq = Seq("stream S = A as a -> B .emit(n: a.n)", max_runs=3)
    out = seq.run(*[("A", {"n": i}) for i in range(5)], ("B", {}))
    assert out == [{"n": 2}, {"n": 3}, {"n": 4}]
    assert seq.matcher.dropped_runs == 2


def test_default_run_cap_is_per_partition() -> None:
    assert MAX_RUNS == 10_000
    seq = Seq("stream S = A as a -> B .partition_by(k) .emit(n: a.n)")
    for i in range(MAX_RUNS + 1):
        seq.push("A", n=i, k="x")
    seq.push("A", n=-1, k="y")
    assert seq.matcher.dropped_runs == 1
    assert seq.matcher.active_runs == MAX_RUNS + 1
    out = seq.matcher.push(Event("B", {"k": "x"}, 0))
    assert len(out) == MAX_RUNS and out[0].captures["a"].fields["n"] == 1  # type: ignore[union-attr]
