"""Grammar and AST-shape tests: every construct, valid and invalid."""

from __future__ import annotations

import pytest

from varpulis.errors import VPLSyntaxError
from varpulis.lang import ast, parse
from varpulis.lang.ast import (
    ArrayLit,
    Assign,
    Attr,
    Binary,
    Call,
    Duration,
    Emit,
    ExprStmt,
    For,
    If,
    IfExpr,
    Index,
    Let,
    Literal,
    MapLit,
    Name,
    Op,
    Range,
    Return,
    Slice,
    Unary,
    While,
)


def expr(text: str) -> object:
    """The expression of ``let x = <text>``."""
    (decl,) = parse(f"let x = {text}").decls
    assert isinstance(decl, Let)
    return decl.value


def lit(v: object) -> Literal:
    return Literal(v)


def name(n: str) -> Name:
    return Name(n)


def b(op: str, left: object, right: object) -> Binary:
    return Binary(op, left, right)


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("42", lit(42)),
        ("1.5", lit(1.5)),
        ("1.5e3", lit(1500.0)),
        ("2e2", lit(200.0)),
        ('"a\\"b\\n\\t\\\\"', lit('a"b\n\t\\')),
        ('"a#b // c"', lit("a#b // c")),
        ("true", lit(True)),
        ("false", lit(False)),
        ("null", lit(None)),
        ("100ms", Duration(100_000_000)),
        ("10s", Duration(10 * 10**9)),
        ("5m", Duration(300 * 10**9)),
        ("1h", Duration(3600 * 10**9)),
        ("1d", Duration(86400 * 10**9)),
        ("2us", Duration(2000)),
        ("7ns", Duration(7)),
        ("1.5s", Duration(1_500_000_000)),
        ("[1, 2.5, \"s\"]", ArrayLit((lit(1), lit(2.5), lit("s")))),
        ("[]", ArrayLit(())),
        ('{"a": 1, b: x}', MapLit((("a", lit(1)), ("b", name("x"))))),
        ("1 + 2 * 3", b("+", lit(1), b("*", lit(2), lit(3)))),
        ("(1 + 2) * 3", b("*", b("+", lit(1), lit(2)), lit(3))),
        ("a - b - c", b("-", b("-", name("a"), name("b")), name("c"))),
        ("2 ** 3 ** 2", b("**", lit(2), b("**", lit(3), lit(2)))),
        ("-2 ** 2", b("**", Unary("-", lit(2)), lit(2))),
        ("a % b / c", b("/", b("%", name("a"), name("b")), name("c"))),
        ("a < b and c >= d", b("and", b("<", name("a"), name("b")), b(">=", name("c"), name("d")))),
        ("a or b and c", b("or", name("a"), b("and", name("b"), name("c")))),
        ("not a == b", Unary("not", b("==", name("a"), name("b")))),
        ("not a and b", b("and", Unary("not", name("a")), name("b"))),
        ("not not a", Unary("not", Unary("not", name("a")))),
        ("x not in xs", b("not in", name("x"), name("xs"))),
        ("x in [1, 2]", b("in", name("x"), ArrayLit((lit(1), lit(2))))),
        ("a | b ^ c & d", b("|", name("a"), b("^", name("b"), b("&", name("c"), name("d"))))),
        ("a << 2 + 1", b("<<", name("a"), b("+", lit(2), lit(1)))),
        ("a >> 1", b(">>", name("a"), lit(1))),
        ("~a", Unary("~", name("a"))),
        ("- -1", Unary("-", Unary("-", lit(1)))),
        ("0..10", Range(lit(0), lit(10))),
        ("1..=n", Range(lit(1), name("n"), True)),
        ("a.price", Attr(name("a"), "price")),
        ("a.b.c", Attr(Attr(name("a"), "b"), "c")),
        ("xs[0]", Index(name("xs"), lit(0))),
        ("xs[-1]", Index(name("xs"), Unary("-", lit(1)))),
        ("xs[1:3]", Slice(name("xs"), lit(1), lit(3))),
        ("xs[:3]", Slice(name("xs"), None, lit(3))),
        ('m["k"]', Index(name("m"), lit("k"))),
        ("f()", Call("f")),
        ("f(1, x)", Call("f", (lit(1), name("x")))),
        ("f(a: 1)", Call("f", (), (("a", lit(1)),))),
        ("f(x).y", Attr(Call("f", (name("x"),)), "y")),
        ("-f(x)", Unary("-", Call("f", (name("x"),)))),
        ("if a then 1 else 2", IfExpr(name("a"), lit(1), lit(2))),
        ("if a > 1 then x else if b then y else z",
         IfExpr(b(">", name("a"), lit(1)), name("x"), IfExpr(name("b"), name("y"), name("z")))),
        ("index + order", b("+", name("index"), name("order"))),
        ("nothing", name("nothing")),
        ("trueness", name("trueness")),
        ("notes == 1", b("==", name("notes"), lit(1))),
        ("(((((((((((x)))))))))))", name("x")),
    ],
)  # fmt: skip
def test_expressions(text: str, tree: object) -> None:
    assert expr(text) == tree


@pytest.mark.parametrize(
    "text",
    [
        "1 < 2 < 3",
        "a == b == c",
        "0..1..2",
        "5min",
        "x ?? 0",
        "'single'",
        "1 +",
        "(1 + 2",
        "f(1,, 2)",
        "99999999999999999999",
        "a && b",
        "a = 1",
        "[1, 2",
        '"unterminated',
        "{a: }",
        "x.",
        "if a then b",
    ],
)
def test_invalid_expressions(text: str) -> None:
    with pytest.raises(VPLSyntaxError):
        parse(f"let x = {text}")


def test_stream_chain_across_lines() -> None:
    program = parse(
        "stream S = A\n.where(x > 1)\n# a comment between operations\n\n    .emit(y: x)\n"
    )
    (stream,) = program.decls
    assert stream == ast.StreamDecl(
        "S",
        ast.EventSource("A"),
        (Op("where", (b(">", name("x"), lit(1)),)), Op("emit", (), (("y", name("x")),))),
    )


def test_two_streams_and_comments() -> None:
    source = (
        "/* block\n comment */\n"
        'stream A = EventA .emit(result: "from-a")  # trailing\n'
        "// line comment\n"
        'stream B = EventB .emit(result: "from-b")\n'
    )
    names = [d.name for d in parse(source).decls]
    assert names == ["A", "B"]


def test_sequence_steps_and_negation() -> None:
    (stream,) = parse(
        "stream S = Order as o\n"
        "    -> Payment where order_id == o.id as p\n"
        "    -> all Tick where price > p.amount as t\n"
        "    .not(Cancel where order_id == o.id)\n"
        "    .within(5m)\n"
        "    .emit(order: o.id, last: t.price)\n"
    ).decls
    assert stream.source == ast.EventSource("Order", "o")
    step1, step2, negation, within, emit = stream.ops
    assert step1 == ast.SeqStep("Payment", "p", b("==", name("order_id"), Attr(name("o"), "id")))
    assert step2.kleene and step2.alias == "t" and step2.event_type == "Tick"
    assert negation == ast.Negation("Cancel", b("==", name("order_id"), Attr(name("o"), "id")))
    assert within == Op("within", (Duration(300 * 10**9),))
    assert emit.name == "emit"


def test_step_filter_then_glued_operation() -> None:
    (stream,) = parse("stream S = A as a -> B where x > a.x.within(5s) .emit(v: 1)").decls
    step, within, _ = stream.ops
    assert step.where == b(">", name("x"), Attr(name("a"), "x"))
    assert within.name == "within"


def test_sources_merge_join_timer() -> None:
    merge, join, timer = parse(
        "stream E = merge(stream H = T .where(t > 30), Humid) .emit(t: t)\n"
        "stream J = join(Orders, Customers) .on(Orders.cid == Customers.id) .emit(n: 1)\n"
        "stream K = timer(5s, initial_delay: 1s) .emit(tick: true)\n"
    ).decls
    assert merge.source == ast.MergeSource(
        (ast.MergeItem("T", "H", b(">", name("t"), lit(30))), ast.MergeItem("Humid"))
    )
    assert join.source == ast.JoinSource(("Orders", "Customers"))
    assert timer.source == ast.TimerSource(Duration(5 * 10**9), Duration(10**9))


def test_every_operation_parses() -> None:
    ops = (
        '.where(a > 1) .select(a, b: a * 2) .emit(x: a) .process(f(a)) .to(Out, topic: "t")'
        ' .from(Out, topic: "in/#") .context(c) .window(5m, sliding: 1m) .aggregate(n: count())'
        ' .partition_by(k) .having(n > 1) .tap(x) .log(level: "info") .print("v", a)'
        " .watermark(out_of_order: 5s) .allowed_lateness(10s) .distinct(a) .limit(10) .first()"
    )
    (stream,) = parse(f"stream S = A {ops}").decls
    assert [op.name for op in stream.ops] == [
        "where", "select", "emit", "process", "to", "from", "context", "window", "aggregate",
        "partition_by", "having", "tap", "log", "print", "watermark", "allowed_lateness",
        "distinct", "limit", "first",
    ]  # fmt: skip


def test_declarations() -> None:
    program = parse(
        'connector Out = mqtt(host: "localhost", port: 1883, client_id: "x")\n'
        "context c1\n"
        "context c2 (cores: [0, 1])\n"
        'import "other.vpl" as other\n'
        "event Reading extends Base:\n"
        "    sensor_id: str\n"
        "    temperature: float\n"
        "    tags: [str]?\n"
        "event Inline: a: int, b: {str: float}\n"
        "const LIMIT = 10\n"
        "let threshold: float = 50.5\n"
        "var count = 0\n"
        "count := count + 1\n"
    )
    conn, c1, c2, imp, ev, inline, const, let, var, assign = program.decls
    assert conn == ast.ConnectorDecl(
        "Out", "mqtt", (("host", lit("localhost")), ("port", lit(1883)), ("client_id", lit("x")))
    )
    assert c1 == ast.ContextDecl("c1")
    assert c2 == ast.ContextDecl("c2", (("cores", ArrayLit((lit(0), lit(1)))),))
    assert imp == ast.Import("other.vpl", "other")
    assert ev == ast.EventDecl(
        "Reading", (("sensor_id", "str"), ("temperature", "float"), ("tags", "[str]?")), "Base"
    )
    assert inline == ast.EventDecl("Inline", (("a", "int"), ("b", "{str:float}")))
    assert const == Let("const", "LIMIT", lit(10))
    assert let == Let("let", "threshold", lit(50.5), "float")
    assert var == Let("var", "count", lit(0))
    assert assign == Assign("count", b("+", name("count"), lit(1)))


def test_named_pattern() -> None:
    (decl,) = parse(
        "pattern P = SEQ(A as a, B+ where price > a.price as b, C*, NOT D, E?) "
        "within 60s partition by symbol"
    ).decls
    assert decl.name == "P" and decl.partition_by == "symbol"
    assert decl.within == Duration(60 * 10**9)
    a, bb, c, d, e = decl.pattern.items
    assert a == ast.PatternItem("A", "a")
    assert bb == ast.PatternItem("B", "b", b(">", name("price"), Attr(name("a"), "price")), "+")
    assert (c.quant, e.quant) == ("*", "?")
    assert d == ast.PatternNot(ast.PatternItem("D"))


def test_pattern_and_or() -> None:
    (decl,) = parse("pattern P = (A AND B) OR SEQ(C, D)").decls
    assert isinstance(decl.pattern, ast.PatternOr)
    assert isinstance(decl.pattern.left, ast.PatternAnd)
    assert isinstance(decl.pattern.right, ast.PatternSeq)


FN = """\
fn classify(n: int) -> str:
    if n > 10:
        return "big"
    elif n > 5:
        return "mid"
    else:
        return "small"

fn gen(count: int):
    var total = 0
    for i in 0..count:
        if i == 2:
            continue
        total := total + i
        emit Item(i: i, label: classify(i * 4), total: total)
    while total > 100: total := total - 1
    emit Done(total: total)
"""


def test_functions_and_blocks() -> None:
    classify, gen = parse(FN).decls
    assert classify.params == (ast.Param("n", "int"),) and classify.returns == "str"
    (chain,) = classify.body
    assert isinstance(chain, If) and len(chain.branches) == 2
    assert chain.orelse == (Return(lit("small")),)
    var, loop, spin, done = gen.body
    assert var == Let("var", "total", lit(0))
    assert isinstance(loop, For) and loop.var == "i" and loop.iter == Range(lit(0), name("count"))
    guard, assign, emit = loop.body
    assert guard.branches[0][1] == (ast.Continue(),)
    assert assign == Assign("total", b("+", name("total"), name("i")))
    assert emit == Emit(
        "Item",
        (
            ("i", name("i")),
            ("label", Call("classify", (b("*", name("i"), lit(4)),))),
            ("total", name("total")),
        ),
    )  # noqa: E501
    assert isinstance(spin, While) and spin.body == (
        Assign("total", b("-", name("total"), lit(1))),
    )
    assert done == Emit("Done", (("total", name("total")),))


def test_trailing_comment_after_colon_and_expression_value() -> None:
    (fn,) = parse(
        "fn f(x: int) -> bool:  # a comment\n    if x > 0:  # another\n        x > 1\n    else:\n"
        "        false\n"
    ).decls
    (chain,) = fn.body
    assert chain.branches[0][1] == (ExprStmt(b(">", name("x"), lit(1))),)


def test_if_expression_statement_in_fn() -> None:
    (fn,) = parse("fn f(x: int) -> int:\n    if x > 0 then 1 else 2\n").decls
    assert fn.body == (ExprStmt(IfExpr(b(">", name("x"), lit(0)), lit(1), lit(2))),)


def test_top_level_for_expansion() -> None:
    program = parse(
        "for r in 0..2:\n"
        "    for c in 0..=1:\n"
        "        context t{r}{c}\n"
        "        stream Tile{r}{c} = ComputeTile{r}{c} .context(t{r}{c})"
        ' .process(tile({c} * 250, {r}, "n{r}"))\n'
    )
    contexts = [d.name for d in program.decls if isinstance(d, ast.ContextDecl)]
    assert contexts == ["t00", "t01", "t10", "t11"]
    last = program.decls[-1]
    assert last.name == "Tile11" and last.source == ast.EventSource("ComputeTile11")
    assert last.ops[1].args[0] == Call("tile", (b("*", lit(1), lit(250)), lit(1), lit("n1")))


def test_negative_loop_bounds() -> None:
    program = parse("for i in -2..0:\n    let v = {i}\n")
    assert [d.value for d in program.decls] == [Unary("-", lit(2)), Unary("-", lit(1))]


def test_leading_indentation_is_tolerated() -> None:
    assert [d.name for d in parse("  stream S = A .emit(v: 1)\n").decls] == ["S"]


def test_crlf_and_tabs() -> None:
    program = parse("fn f(x: int) -> int:\r\n\treturn x\r\nstream S = A\r\n\t.emit(v: f(1))\r\n")
    assert [type(d).__name__ for d in program.decls] == ["FnDecl", "StreamDecl"]


def test_spans_point_at_source() -> None:
    source = "stream S = A\n    .where(price > 5)\n"
    (stream,) = parse(source).decls
    where = stream.ops[0]
    assert source[where.span.start :].startswith(".where")
    cond = where.args[0]
    assert source[cond.span.start : cond.span.end] == "price > 5"


def test_ast_is_hashable_and_picklable() -> None:
    import pickle

    program = parse(FN)
    assert pickle.loads(pickle.dumps(program)) == program
    assert hash(program.decls[0]) == hash(parse(FN).decls[0])


def test_layout_does_not_change_equality() -> None:
    one = parse("stream S = A .where(x > 1) .emit(y: x)")
    two = parse("stream S = A\n    .where( x>1 )\n    .emit( y : x )\n")
    assert one == two


@pytest.mark.parametrize(
    "source",
    [
        "stream S = \n",
        "stream = A",
        'connector X = mqtt(host "x")',
        "fn f(a: int)\n    return a",
        "fn f(a: int):\n",
        "fn f(a: int):\nreturn a",
        "fn f(a: int):\n    return a\n      return a",
        "fn f():\n    if x:\n        return 1\n    elif:\n        return 2",
        "else:\n    x",
        "return 1",
        "stream S = A .where(x > 1",
        "stream S = A .where(x > 1))",
        "stream S = A -> ",
        "fn f():\n    stream S = A",
        "fn f():\n    fn g():\n        return 1",
        "for i in 0..n:\n    context c{i}",
        "if x:\n    y",
        "while x:\n    y",
        "pattern P = SEQ(A,",
        "stream S = A\n    stream T = B",
        "let = 1",
        "stream S = A as a -> B as b where x as c",
    ],
)
def test_invalid_programs(source: str) -> None:
    with pytest.raises(VPLSyntaxError):
        parse(source)
