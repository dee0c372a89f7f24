"""Lowering stream operations to kernels: what is batchable, and typing per kind signature."""

from __future__ import annotations

import pytest

from varpulis.compiler.batch import compile_chain
from varpulis.lang import ast
from varpulis.runtime.engine import Engine


def chain(source: str):  # noqa: ANN201 - tuple of steps or None
    engine = Engine(source)
    decl = engine.plan.streams[-1].decl
    ops = [op for op in decl.ops if isinstance(op, ast.Op)]
    return compile_chain(ops, engine.scope, decl.name)


def test_filter_emit_lowers_to_where_and_emit() -> None:
    steps = chain("stream S = T .where(t > 100) .emit(id: id, t2: t * 2)")
    assert [s.op for s in steps] == ["where", "emit"]
    assert steps[0].expr.fields == ("t",)
    assert steps[1].items[0] == ("id", "id")  # copied as it is
    assert steps[1].items[1][1].fields == ("t",)
    assert steps[1].event_type == "S"


def test_steps_after_the_emit_are_dropped_and_no_emit_is_empty() -> None:
    assert [s.op for s in chain("stream S = T .emit(a: a) .where(a > 1)")] == ["emit"]
    assert chain("stream S = T .where(a > 1) .select(a)") == ()


@pytest.mark.parametrize(
    "source",
    [
        "stream S = T .where(len(s) > 1)",  # a function call
        "stream S = T .where(a % 2 == 0) .emit(a: a)",  # modulo
        "stream S = T .emit(a: a) .emit(b: a)",  # two emits
        "stream S = T .emit(a: a, a: b)",  # duplicate keys
        "stream S = T .emit(event_type: kind, a: a)",  # a per-event output type
        "stream S = T .where(a > 1) .print()",
        "stream S = T .emit(x: [a, b])",
        "stream S = T .where(a in [1, 2]) .emit(a: a)",
    ],
)
def test_not_batchable(source: str) -> None:
    assert chain(source) is None


def test_typing_per_kind_signature_and_constants() -> None:
    source = 'const LIMIT = 10\nstream S = T .where(a / b > LIMIT and s == "x") .emit(a: a)'
    expr = chain(source)[0].expr
    assert expr.fields == ("a", "b", "s")
    assert expr.kernel(("f", "f", "s")) is not None
    assert expr.kernel(("i", "f", "s")) is not None
    assert expr.kernel(("i", "i", "s")) is None  # int / int truncates: per event
    assert expr.kernel(("f", "f", "s")) is expr.kernel(("f", "f", "s"))  # cached


def test_unrelated_kinds_fold_to_constants() -> None:
    expr = chain('stream S = T .where(a == "x") .emit(a: a)')[0].expr
    kernel = expr.kernel(("i",))
    assert kernel is not None and kernel.node.op == "const" and kernel.node.value is False
    ne = chain('stream S = T .where(not (a != "x")) .emit(a: a)')[0].expr.kernel(("f",))
    assert ne.node.value is False


def test_event_type_constant_sets_the_output_type() -> None:
    steps = chain('stream S = T .emit(event_type: "Alert", a: a)')
    assert steps[0].event_type == "Alert"
    assert chain("stream S = T .emit(event_type: 5, a: a)")[0].event_type == "S"
