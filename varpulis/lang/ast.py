"""The VPL abstract syntax tree: frozen, slotted dataclasses.

Nodes hold data only; meaning lives in ``varpulis.compiler`` and
``varpulis.runtime``. Sequences are tuples, so every node is hashable and
picklable. Each node ends with a ``span`` (0-based character offsets into the
program text) that is excluded from equality and repr, so two parses of the
same program compare equal whatever its layout. Each class docstring shows
the VPL syntax it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "NO_SPAN",
    "ArrayLit",
    "Assign",
    "Attr",
    "Binary",
    "Break",
    "Call",
    "ConnectorDecl",
    "ContextDecl",
    "Continue",
    "Decl",
    "Duration",
    "Emit",
    "EventDecl",
    "EventSource",
    "Expr",
    "ExprStmt",
    "FnDecl",
    "For",
    "If",
    "IfExpr",
    "Import",
    "Index",
    "JoinSource",
    "Let",
    "Literal",
    "MapLit",
    "MergeItem",
    "MergeSource",
    "Name",
    "Negation",
    "Op",
    "Param",
    "PatternAnd",
    "PatternDecl",
    "PatternExpr",
    "PatternItem",
    "PatternNot",
    "PatternOr",
    "PatternSeq",
    "Program",
    "Range",
    "Return",
    "SeqStep",
    "Slice",
    "Source",
    "Span",
    "Stmt",
    "StreamDecl",
    "TimerSource",
    "Unary",
    "While",
]


@dataclass(frozen=True, slots=True)
class Span:
    """Half-open range ``[start, end)`` of character offsets into the program text."""

    start: int
    end: int


NO_SPAN = Span(0, 0)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Literal:
    """``42``, ``1.5``, ``"text"``, ``true``, ``false``, ``null``.

    ``value`` is an int, float, str, bool or None; strings are unescaped.
    """

    value: int | float | str | bool | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Duration:
    """``100ms``, ``10s``, ``5m``, ``1h``, ``1d``: a duration in nanoseconds."""

    nanos: int
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Name:
    """``temperature``: a local, a top-level constant or a field of the event."""

    id: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Attr:
    """``a.price``: a field of a captured event, a map entry or ``Type.field``."""

    obj: Expr
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Index:
    """``xs[i]``, ``m["k"]``, ``s[0]``."""

    obj: Expr
    index: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Slice:
    """``xs[a:b]`` (either bound may be omitted)."""

    obj: Expr
    start: Expr | None
    stop: Expr | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Call:
    """``f(a, b)`` or ``f(x: 1)``: a user function or a builtin, by name."""

    func: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr], ...] = ()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Unary:
    """``-x``, ``not x``, ``~x``."""

    op: str
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Binary:
    """``a + b``; ``op`` is one of ``+ - * / % ** == != < <= > >= and or in
    not in is | ^ & << >>``."""

    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Range:
    """``a..b`` (exclusive) or ``a..=b`` (inclusive); iterated by ``for``."""

    start: Expr
    stop: Expr
    inclusive: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class IfExpr:
    """``if cond then a else b``."""

    cond: Expr
    then: Expr
    orelse: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ArrayLit:
    """``[e1, e2, ...]``."""

    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class MapLit:
    """``{"k": e, k2: e}``; keys are strings (bare identifiers are their text)."""

    items: tuple[tuple[str, Expr], ...]
    span: Span = _span()


Expr = (
    Literal
    | Duration
    | Name
    | Attr
    | Index
    | Slice
    | Call
    | Unary
    | Binary
    | Range
    | IfExpr
    | ArrayLit
    | MapLit
)


# ----------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class Let:
    """``let x = e``, ``var x = e``, ``const X = e`` (``let x: float = e`` too).

    ``kind`` is ``"let"``, ``"var"`` or ``"const"``; ``type`` is the annotation
    text or None (annotations are documentation, never conversions).
    """

    kind: str
    name: str
    value: Expr
    type: str | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Assign:
    """``x := e``."""

    name: str
    value: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class If:
    """``if c: ... elif c2: ... else: ...``; ``branches`` pairs each condition
    with its body, ``orelse`` is the ``else`` body (may be empty)."""

    branches: tuple[tuple[Expr, tuple[Stmt, ...]], ...]
    orelse: tuple[Stmt, ...] = ()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class While:
    """``while cond: ...``."""

    cond: Expr
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class For:
    """``for v in a..b: ...`` or ``for v in expr: ...`` (array, map, int)."""

    var: str
    iter: Expr
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Return:
    """``return`` or ``return e``."""

    value: Expr | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Break:
    """``break``."""

    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Continue:
    """``continue``."""

    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Emit:
    """``emit Pixel(x: px, y: py)``: creates an event of type ``Pixel``."""

    event_type: str
    fields: tuple[tuple[str, Expr], ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ExprStmt:
    """An expression on its own line (a function's last one is its value)."""

    expr: Expr
    span: Span = _span()


Stmt = Let | Assign | If | While | For | Return | Break | Continue | Emit | ExprStmt


# --------------------------------------------------------------- declarations


@dataclass(frozen=True, slots=True)
class Param:
    """``name: type`` in a ``fn`` signature (the type is documentation)."""

    name: str
    type: str | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class FnDecl:
    """``fn name(a: int, b: float) -> int:`` followed by an indented body."""

    name: str
    params: tuple[Param, ...]
    returns: str | None
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class EventDecl:
    """``event Name [extends Base]:`` followed by ``field: type`` lines."""

    name: str
    fields: tuple[tuple[str, str], ...]
    extends: str | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ConnectorDecl:
    """``connector Out = mqtt(host: "localhost", port: 1883)``."""

    name: str
    kind: str
    params: tuple[tuple[str, Expr], ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ContextDecl:
    """``context t00`` or ``context t00 (cores: [0, 1])``."""

    name: str
    params: tuple[tuple[str, Expr], ...] = ()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Import:
    """``import "other.vpl"`` or ``import "other.vpl" as x``."""

    path: str
    alias: str | None = None
    span: Span = _span()


# -------------------------------------------------------------------- streams


@dataclass(frozen=True, slots=True)
class EventSource:
    """``Reading`` or ``Reading as r``: an event type, a stream or a pattern."""

    name: str
    alias: str | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class MergeItem:
    """One entry of ``merge(...)``: ``Src`` or ``stream Label = Src .where(p)``."""

    source: str
    label: str | None = None
    where: Expr | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class MergeSource:
    """``merge(A, stream HotB = B .where(t > 30), C)``."""

    items: tuple[MergeItem, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class JoinSource:
    """``join(Orders, Customers)``; the keys come from a following ``.on(...)``."""

    sources: tuple[str, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TimerSource:
    """``timer(5s)`` or ``timer(5s, initial_delay: 1s)``."""

    interval: Expr
    initial_delay: Expr | None = None
    span: Span = _span()


Source = EventSource | MergeSource | JoinSource | TimerSource


@dataclass(frozen=True, slots=True)
class Op:
    """``.name(args, key: value)``: one stream operation, e.g. ``.where(t > 1)``."""

    name: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr], ...] = ()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class SeqStep:
    """``-> [all] Type [where pred] [as alias]``: one followed-by step.

    ``kleene`` is true for ``-> all Type`` (one or more).
    """

    event_type: str
    alias: str | None = None
    where: Expr | None = None
    kleene: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Negation:
    """``.not(Cancel where order_id == o.id)``: invalidates matching runs."""

    event_type: str
    where: Expr | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class StreamDecl:
    """``stream Name = Source .op(...) -> Step ...``.

    ``ops`` keeps operations, sequence steps and negations in written order.
    """

    name: str
    source: Source
    ops: tuple[Op | SeqStep | Negation, ...]
    span: Span = _span()


# ------------------------------------------------------------------- patterns


@dataclass(frozen=True, slots=True)
class PatternItem:
    """``B+ where price > a.price as b``; ``quant`` is ``""``, ``+``, ``*`` or ``?``."""

    event_type: str
    alias: str | None = None
    where: Expr | None = None
    quant: str = ""
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class PatternSeq:
    """``SEQ(item, item, ...)``."""

    items: tuple[PatternExpr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class PatternAnd:
    """``p AND q``: both, in any order."""

    left: PatternExpr
    right: PatternExpr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class PatternOr:
    """``p OR q``: either."""

    left: PatternExpr
    right: PatternExpr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class PatternNot:
    """``NOT item`` inside ``SEQ``: no such event between its neighbours."""

    item: PatternExpr
    span: Span = _span()


PatternExpr = PatternItem | PatternSeq | PatternAnd | PatternOr | PatternNot


@dataclass(frozen=True, slots=True)
class PatternDecl:
    """``pattern P = SEQ(A as a, B+ as b) within 60s partition by symbol``."""

    name: str
    pattern: PatternExpr
    within: Expr | None = None
    partition_by: str | None = None
    span: Span = _span()


Decl = (
    FnDecl
    | EventDecl
    | ConnectorDecl
    | ContextDecl
    | Import
    | StreamDecl
    | PatternDecl
    | Let
    | Assign
    | ExprStmt
)


@dataclass(frozen=True, slots=True)
class Program:
    """A whole VPL program: its declarations in source order.

    Top-level ``for i in a..b:`` loops are already expanded; ``source`` is the
    original text (spans index into it) and ``filename`` its file, if any.
    """

    decls: tuple[Decl, ...]
    source: str = field(default="", compare=False, repr=False)
    filename: str | None = field(default=None, compare=False, repr=False)
