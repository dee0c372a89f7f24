"""The sequence matcher (varpulis/runtime/nfa.py): hand-built specs (no parser), and
property tests against a brute-force reference matcher written from the run rules
(DESIGN §4.1.12) on random event lists: out-of-order timestamps, partitions,
``within``, negation, Kleene steps with filters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.runtime.test_patterns import compile_last
from varpulis.compiler.evalctx import EvalContext
from varpulis.errors import VPLRuntimeError
from varpulis.events import Event
from varpulis.runtime.patterns import Guard, SequenceMatcher, SequenceSpec, Step

S = 1_000_000_000  # one second in ns


# -------------------------------------------------- hand-built specs (no parser)


def test_a_predicate_raising_a_runtime_error_counts_as_no_match() -> None:
    def boom(fields: dict, ctx: EvalContext) -> bool:
        if fields.get("bad"):
            raise VPLRuntimeError("boom")
        return True

    spec = SequenceSpec("S", (((Step("A", "a"), Step("B", "b", boom)),),))
    matcher = SequenceMatcher(spec)
    matcher.push(Event("A", {}, 0))
    assert matcher.push(Event("B", {"bad": True}, 1)) == []
    assert matcher.errors == 1
    assert len(matcher.push(Event("B", {}, 2))) == 1


def test_hand_built_guard_and_bad_cap() -> None:
    spec = SequenceSpec(
        "S", (((Step("A"), Step("B")),),), negations=(Guard("X"),), partition_by=None
    )
    assert spec.event_types == ("A", "B", "X")
    matcher = SequenceMatcher(spec)
    for kind in ("A", "X", "B"):
        assert matcher.push(Event(kind, {}, 0)) == []
    with pytest.raises(ValueError, match="max_runs"):
        SequenceMatcher(spec, max_runs=0)


# ----------------------------------------------- property tests vs a reference


class RefStep:
    def __init__(self, kind: str, alias: str | None, kleene: bool, test: Callable) -> None:
        self.kind, self.alias, self.kleene, self.test = kind, alias, kleene, test


def reference(
    steps: list[RefStep],
    negations: list[tuple[str, Callable]],
    events: list[Event],
    within: int | None = None,
    key: str | None = None,
) -> list[tuple[int, int, dict[str, Any]]]:
    """The rules, literally: every run in a list, each event offered to each run in
    creation order. Returns (completing index, starting index, captures) per match."""
    types = {s.kind for s in steps} | {kind for kind, _ in negations}
    runs: list[dict[str, Any]] = []
    out = []
    clock = None
    for i, e in enumerate(events):
        if e.event_type not in types:
            continue
        clock = e.timestamp if clock is None else max(clock, e.timestamp)
        k = e.fields.get(key, "<none>") if key else None
        for run in runs:
            if not run["alive"] or run["key"] != k:
                continue
            if within is not None and clock > run["t0"] + within:
                run["alive"] = False
                continue
            c = run["caps"]
            if any(kind == e.event_type and test(e, c) for kind, test in negations):
                run["alive"] = False
                continue
            pos = run["pos"]
            nxt = steps[pos + 1] if pos + 1 < len(steps) else None
            if nxt is not None and nxt.kind == e.event_type and nxt.test(e, c):
                pos += 1
                if nxt.alias:
                    c[nxt.alias] = [e] if nxt.kleene else e
            elif steps[pos].kleene and steps[pos].kind == e.event_type and steps[pos].test(e, c):
                if steps[pos].alias:
                    c[steps[pos].alias].append(e)
            else:
                continue
            run["pos"] = pos
            if pos == len(steps) - 1:
                out.append((i, run["start"], snapshot(c)))
                run["alive"] = steps[-1].kleene
        first = steps[0]
        if e.event_type == first.kind and first.test(e, {}):
            c = {first.alias: e} if first.alias else {}
            runs.append({"start": i, "pos": 0, "caps": c, "alive": True, "key": k})
            runs[-1]["t0"] = e.timestamp
    return out


def snapshot(c: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, list) else v for k, v in c.items()}


def as_indices(events: list[Event], c: dict[str, Any]) -> dict[str, Any]:
    where = {id(e): i for i, e in enumerate(events)}
    return {
        k: [where[id(x)] for x in v] if isinstance(v, list) else where[id(v)] for k, v in c.items()
    }


def run_matcher(source: str, events: list[Event]) -> list[tuple[int, int, dict[str, Any]]]:
    spec, _ = compile_last(source)
    assert spec is not None
    matcher = SequenceMatcher(spec)
    first = spec.steps[0].alias
    out = []
    for i, e in enumerate(events):
        for m in matcher.push(e):
            got = as_indices(events, m.captures)
            start = got[first] if isinstance(got[first], int) else got[first][0]
            out.append((i, start, got))
    return out


def run_reference(events: list[Event], *args: Any, **kwargs: Any) -> list[tuple]:
    return [(i, s, as_indices(events, c)) for i, s, c in reference(*args, events, **kwargs)]


def v(e: Any) -> Any:
    return (e[-1] if isinstance(e, list) else e).fields["v"]


def always(e: Event, c: dict) -> bool:
    return True


def events_of(
    types: str, keys: list[str | None], max_size: int, min_size: int = 0
) -> st.SearchStrategy:
    """Short random event lists: type, ``v`` in 0..3, optional key ``k``, and a timestamp
    that mostly moves forward by 0-2 s but sometimes jumps back (out of order)."""
    item = st.tuples(
        st.sampled_from(types), st.integers(0, 3), st.sampled_from(keys), st.integers(-3, 2)
    )

    def build(items: list[tuple[str, int, str | None, int]]) -> list[Event]:
        out, ts = [], 0
        for t, n, k, step in items:
            ts = max(0, ts + step) if step >= 0 or n == 0 else ts
            out.append(Event(t, {"v": n, **({"k": k} if k else {})}, ts * S))
        return out

    return st.lists(item, min_size=min_size, max_size=max_size).map(build)


event_lists = events_of("ABCD", ["x", "y", None], 14)
dense_lists = events_of("AABBBCCD", ["x", "x", None], 24, min_size=8)


CHAINS = {
    "pair with alias filter": (
        "stream S = A as a -> B where v > a.v as b",
        [
            RefStep("A", "a", False, always),
            RefStep("B", "b", False, lambda e, c: e.fields["v"] > v(c["a"])),
        ],
    ),
    "middle kleene": (
        "stream S = A as a -> all B as b -> C",
        [
            RefStep("A", "a", False, always),
            RefStep("B", "b", True, always),
            RefStep("C", None, False, always),
        ],
    ),
}


@pytest.mark.parametrize("name", list(CHAINS))
@settings(max_examples=300, deadline=None)
@given(events=event_lists)
def test_property_chain(name: str, events: list[Event]) -> None:
    source, steps = CHAINS[name]
    assert run_matcher(source, events) == run_reference(events, steps, [])


@settings(max_examples=300, deadline=None)
@given(dense_lists)
def test_property_kleene_with_filters_negation_partition_within(events: list[Event]) -> None:
    steps = [
        RefStep("A", "a", False, always),
        RefStep("B", "b", True, lambda e, c: e.fields["v"] >= v(c["a"])),
        RefStep("C", "c", False, lambda e, c: e.fields["v"] < v(c["b"])),
    ]
    negations = [("D", lambda e, c: e.fields["v"] == v(c["a"]))]
    expected = run_reference(events, steps, negations, within=3 * S, key="k")
    source = (
        "stream S = A as a -> all B where v >= a.v as b -> C where v < b.v as c"
        " .not(D where v == a.v) .partition_by(k) .within(3s)"
    )
    assert run_matcher(source, events) == expected


@settings(max_examples=300, deadline=None)
@given(event_lists)
def test_property_final_kleene_with_wholesale_negation(events: list[Event]) -> None:
    steps = [
        RefStep("A", "a", False, lambda e, c: e.fields["v"] < 3),
        RefStep("B", "b", True, lambda e, c: e.fields["v"] > v(c["a"])),
    ]
    negations = [("C", lambda e, c: e.fields["v"] == 0)]
    expected = run_reference(events, steps, negations, key="k")
    source = "stream S = A as a -> all B where v > a.v as b .not(C where v == 0) .partition_by(k)"
    assert run_matcher(source, events) == expected
