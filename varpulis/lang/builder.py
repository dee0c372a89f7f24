"""Build AST nodes from the VPL grammar's matches.

Importing this module attaches parse actions to the elements of
``varpulis.lang.grammar``, so one pass over a logical line yields AST nodes
directly. Flat operator chains are folded into trees by a small Pratt parser
(:func:`fold_operators`), which also rejects chained comparisons.

Block headers (``fn``, ``if``, ``while`` ...) become :class:`Header` objects;
``varpulis.lang.parser`` attaches their indented bodies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pyparsing as pp

from varpulis.lang import ast
from varpulis.lang import grammar as g

__all__ = ["BuildError", "Header", "fold_operators", "unescape"]

_NANOS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
          "h": 3600 * 10**9, "d": 86400 * 10**9}  # fmt: skip
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "0": "\0"}
_CONSTANTS = {"true": True, "false": False, "null": None}
_MISSING = object()
_MAX_INT = 2**63 - 1


class BuildError(Exception):
    """A construct matched the grammar but is not valid VPL (internal to the parser)."""

    def __init__(self, message: str, loc: int, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.loc, self.hint = message, loc, hint


@dataclass(frozen=True, slots=True)
class Header:
    """A block header: ``kind`` is fn/if/elif/else/while/for/event; ``data`` its parts."""

    kind: str
    data: tuple[Any, ...]
    loc: int
    inline: tuple[Any, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class _Tok:
    op: str
    loc: int


@dataclass(frozen=True, slots=True)
class _Suffix:
    kind: str
    value: Any
    loc: int


@dataclass(frozen=True, slots=True)
class _KwArg:
    name: str
    value: Any


def unescape(literal: str) -> str:
    """Turn a quoted VPL string literal into its value (``\\n \\t \\" \\\\`` ...)."""
    body = literal[1:-1]
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _span(loc: int, end: int | None = None) -> ast.Span:
    return ast.Span(loc, loc if end is None else end)


# ------------------------------------------------------------------ expressions


_ATOM_RE = re.compile(g._ATOM)
_BINOP_RE = re.compile(g._BINOP)
_SPACE = re.compile(r"\s*")
_ATOM_PARTS = re.compile(r"((?:(?:not\b|-|~)\s*)*)(.*)", re.S)


def _atom(s: str, loc: int, toks: pp.ParseResults) -> list[Any]:
    """``[prefix operators...] number|string|name[.member...]`` → [_Tok..., node]."""
    return _atom_items(toks[0], loc)


def _flat(s: str, loc: int, toks: pp.ParseResults) -> Any:
    """Fold a FLAT_EXPR match: atoms and binary operators only."""
    text = toks[0]
    items: list[Any] = []
    pos, end = 0, len(text)
    while True:
        m = _ATOM_RE.match(text, pos)
        items.extend(_atom_items(m.group(), loc + pos))
        pos = _SPACE.match(text, m.end()).end()
        if pos >= end:
            break
        m = _BINOP_RE.match(text, pos)
        op = m.group()
        items.append(_Tok("not in" if op.startswith("not") else op, loc + pos))
        pos = _SPACE.match(text, m.end()).end()
    return items[0] if len(items) == 1 else fold_operators(items)


def _atom_items(text: str, loc: int) -> list[Any]:
    out: list[Any] = []
    first = text[0]
    if first in "-~n":
        prefix, rest = _ATOM_PARTS.match(text).groups()
        if prefix:
            out = [_Tok(m.group(), loc + m.start()) for m in _PREFIX.finditer(prefix)]
            loc += len(prefix)
            text = rest
            first = text[0]
    end = loc + len(text)
    if first == '"':
        out.append(ast.Literal(unescape(text), _span(loc, end)))
    elif first.isdigit():
        out.append(_number(text, loc, end))
    else:
        name, *members = text.split(".")
        node: Any = _CONSTANTS.get(name, _MISSING)
        if node is _MISSING:
            node = ast.Name(name, _span(loc, loc + len(name)))
        else:
            node = ast.Literal(node, _span(loc, loc + len(name)))
        for member in members:
            node = ast.Attr(node, member, _span(loc, end))
        out.append(node)
    return out


def _number(text: str, loc: int, end: int) -> Any:
    digits = text.rstrip("nsumhd")
    unit = text[len(digits) :]
    if unit:
        return ast.Duration(round(float(digits) * _NANOS[unit]), _span(loc, end))
    if "." in digits or "e" in digits or "E" in digits:
        return ast.Literal(float(digits), _span(loc, end))
    value = int(digits)
    if value > _MAX_INT:
        msg = f"integer literal {text} is out of range (at most {_MAX_INT})"
        raise BuildError(msg, loc, "use a float literal such as 1.0e20")
    return ast.Literal(value, _span(loc, end))


def _operand(s: str, loc: int, toks: pp.ParseResults) -> list[Any]:
    """Apply call/index/member suffixes to an operand; prefix operators stay in front."""
    items = list(toks[0])
    i = 0
    while isinstance(items[i], _Tok):
        i += 1
    node = items[i]
    for suffix in items[i + 1 :]:
        if isinstance(suffix, str):  # member suffix ".name"
            node = ast.Attr(node, suffix[1:], _span(node.span.start))
        elif suffix.kind == "call":
            if not isinstance(node, ast.Name):
                msg = "only named functions can be called"
                raise BuildError(msg, suffix.loc, "call a function by its name, e.g. len(xs)")
            args, kwargs = _args(suffix.value)
            node = ast.Call(node.id, args, kwargs, _span(node.span.start))
        elif suffix.kind == "index":
            node = ast.Index(node, suffix.value, _span(node.span.start))
        else:
            start, stop = suffix.value
            node = ast.Slice(node, start, stop, _span(node.span.start))
    return [*items[:i], node]


def _call_suffix(s: str, loc: int, toks: pp.ParseResults) -> _Suffix:
    return _Suffix("call", tuple(toks[0][0]), loc)


def _index_suffix(s: str, loc: int, toks: pp.ParseResults) -> _Suffix:
    inner = toks[0][0]
    if isinstance(inner, pp.ParseResults):  # the SLICE group
        start, stop = inner
        return _Suffix("slice", (start, stop), loc)
    return _Suffix("index", inner, loc)


def _kwarg(s: str, loc: int, toks: pp.ParseResults) -> _KwArg:
    name, value = toks[0]
    return _KwArg(name, value)


def _arg(s: str, loc: int, toks: pp.ParseResults) -> Any:
    group = toks[0]
    return _KwArg(group[0], group[1]) if len(group) == 2 else group[0]


def _prefixes(s: str, loc: int, toks: pp.ParseResults) -> list[_Tok]:
    return [_Tok(m.group(), loc + m.start()) for m in _PREFIX.finditer(toks[0])]


_PREFIX = re.compile(r"not|-|~")
_BP = {
    "..": 1, "..=": 1, "or": 2, "and": 3,
    "==": 5, "!=": 5, "<": 5, "<=": 5, ">": 5, ">=": 5, "in": 5, "not in": 5, "is": 5,
    "|": 6, "^": 7, "&": 8, "<<": 9, ">>": 9, "+": 10, "-": 10, "*": 11, "/": 11, "%": 11,
    "**": 12,
}  # fmt: skip
_NOT_BP = 4
_NEG_BP = 13  # '-' and '~' bind tighter than '**': -2 ** 2 == 4
_NON_ASSOC = {1, 5}


def fold_operators(items: list[Any]) -> Any:
    """Fold ``[not]* operand (op [not]* operand)*`` into an expression tree.

    Binding powers follow the VPL precedence table (loosest first): range,
    ``or``, ``and``, ``not``, comparisons, ``|``, ``^``, ``&``, shifts,
    ``+ -``, ``* / %``, ``**`` (right-associative). Comparisons and ranges do
    not chain: ``1 < 2 < 3`` raises :class:`BuildError`.
    """
    pos = 0

    def parse(min_bp: int) -> Any:
        nonlocal pos
        tok = items[pos]
        pos += 1
        if isinstance(tok, _Tok):  # a prefix operator
            operand = parse(_NOT_BP if tok.op == "not" else _NEG_BP)
            left = ast.Unary(tok.op, operand, _span(tok.loc, operand.span.end))
        else:
            left = tok
        while pos < len(items):
            op = items[pos]
            bp = _BP[op.op]
            if bp < min_bp:
                break
            pos += 1
            right = parse(bp if op.op == "**" else bp + 1)
            span = _span(left.span.start, right.span.end)
            if bp == 1:
                left = ast.Range(left, right, op.op == "..=", span)
            else:
                left = ast.Binary(op.op, left, right, span)
            if bp in _NON_ASSOC and pos < len(items) and _BP[items[pos].op] == bp:
                nxt = items[pos]
                msg = f"{nxt.op!r} cannot follow {op.op!r} without parentheses"
                hint = "comparisons do not chain: write a < b and b < c"
                raise BuildError(msg, nxt.loc, hint if bp == 5 else None)
        return left

    return parse(1)


def _expr(s: str, loc: int, toks: pp.ParseResults) -> Any:
    items = list(toks[0])
    if len(items) == 1:
        return items[0]
    return fold_operators(items)


def _binop(s: str, loc: int, toks: pp.ParseResults) -> _Tok:
    op = toks[0]
    return _Tok("not in" if op.startswith("not") else op, loc)


def _if_expr(s: str, loc: int, toks: pp.ParseResults) -> ast.IfExpr:
    _, cond, then, orelse = toks[0]
    return ast.IfExpr(cond, then, orelse, _span(loc, orelse.span.end))


def _array(s: str, loc: int, toks: pp.ParseResults) -> ast.ArrayLit:
    return ast.ArrayLit(tuple(toks[0]), _span(loc))


def _map_entry(s: str, loc: int, toks: pp.ParseResults) -> tuple[str, Any]:
    key, value = toks[0]
    return [(unescape(key) if key.startswith('"') else key, value)]


def _map(s: str, loc: int, toks: pp.ParseResults) -> ast.MapLit:
    return ast.MapLit(tuple(toks[0]), _span(loc))


# ------------------------------------------------------------------ statements


def _kwargs(group: Any) -> tuple[tuple[str, Any], ...]:
    return tuple((a.name, a.value) for a in group)


def _let(s: str, loc: int, toks: pp.ParseResults) -> ast.Let:
    kind, name, type_, value = toks[0]
    return ast.Let(kind, name, value, type_, _span(loc, value.span.end))


def _assign(s: str, loc: int, toks: pp.ParseResults) -> ast.Assign:
    name, value = toks[0]
    return ast.Assign(name, value, _span(loc, value.span.end))


def _return(s: str, loc: int, toks: pp.ParseResults) -> ast.Return:
    group = toks[0]
    return ast.Return(group[1] if len(group) > 1 else None, _span(loc))


def _emit(s: str, loc: int, toks: pp.ParseResults) -> ast.Emit:
    _, name, fields = toks[0]
    return ast.Emit(name, _kwargs(fields), _span(loc))


def _args(toks: pp.ParseResults) -> tuple[tuple[Any, ...], tuple[tuple[str, Any], ...]]:
    args = tuple(a for a in toks if not isinstance(a, _KwArg))
    kwargs = tuple((a.name, a.value) for a in toks if isinstance(a, _KwArg))
    return args, kwargs


# ------------------------------------------------------------------ declarations


def _connector(s: str, loc: int, toks: pp.ParseResults) -> ast.ConnectorDecl:
    _, name, kind, params = toks[0]
    return ast.ConnectorDecl(name, kind, _kwargs(params), _span(loc))


def _context(s: str, loc: int, toks: pp.ParseResults) -> ast.ContextDecl:
    _, name, params = toks[0]
    return ast.ContextDecl(name, _kwargs(params) if params is not None else (), _span(loc))


def _import(s: str, loc: int, toks: pp.ParseResults) -> ast.Import:
    _, path, alias = toks[0]
    return ast.Import(unescape(path), alias, _span(loc))


def _merge_item(s: str, loc: int, toks: pp.ParseResults) -> ast.MergeItem:
    if isinstance(toks[0], str):
        return ast.MergeItem(toks[0], None, None, _span(loc))
    _, label, source, where = toks[0]
    return ast.MergeItem(source, label, where, _span(loc))


def _source(kind: str):  # noqa: ANN202 - parse-action factory
    def build(s: str, loc: int, toks: pp.ParseResults) -> Any:
        group = toks[0]
        if kind == "merge":
            return ast.MergeSource(tuple(group[1:]), _span(loc))
        if kind == "join":
            return ast.JoinSource(tuple(group[1:]), _span(loc))
        if kind == "timer":
            args, kwargs = _args(group[1])
            if len(args) != 1 or any(k != "initial_delay" for k, _ in kwargs):
                msg = "timer() takes one interval and an optional initial_delay:"
                raise BuildError(msg, loc, "timer(5s) or timer(5s, initial_delay: 1s)")
            return ast.TimerSource(args[0], dict(kwargs).get("initial_delay"), _span(loc))
        name, alias = group
        return ast.EventSource(name, alias, _span(loc))

    return build


def _operation(s: str, loc: int, toks: pp.ParseResults) -> ast.Op:
    name, argtoks = toks[0]
    args, kwargs = _args(argtoks)
    return ast.Op(name, args, kwargs, _span(loc))


def _negation(s: str, loc: int, toks: pp.ParseResults) -> ast.Negation:
    name, where = toks[0]
    return ast.Negation(name, where, _span(loc))


def _step(s: str, loc: int, toks: pp.ParseResults) -> ast.SeqStep:
    kleene, name, alias1, where, alias2 = toks[0]
    if alias1 and alias2:
        msg = f"step {name!r} has two aliases ({alias1!r} and {alias2!r})"
        raise BuildError(msg, loc)
    return ast.SeqStep(name, alias1 or alias2, where, kleene is not None, _span(loc))


def _stream(s: str, loc: int, toks: pp.ParseResults) -> ast.StreamDecl:
    _, name, source, parts = toks[0]
    return ast.StreamDecl(name, source, tuple(parts), _span(loc))


def _p_item(s: str, loc: int, toks: pp.ParseResults) -> Any:
    neg, name, quant, alias1, where, alias2 = toks[0]
    item = ast.PatternItem(name, alias1 or alias2, where, quant, _span(loc))
    return ast.PatternNot(item, _span(loc)) if neg else item


def _p_seq(s: str, loc: int, toks: pp.ParseResults) -> ast.PatternSeq:
    return ast.PatternSeq(tuple(toks[0][1:]), _span(loc))


def _p_binary(node: type):  # noqa: ANN202 - parse-action factory
    def build(s: str, loc: int, toks: pp.ParseResults) -> Any:
        items = list(toks[0])
        left = items[0]
        for right in items[2::2]:
            left = node(left, right, _span(loc))
        return left

    return build


def _pattern(s: str, loc: int, toks: pp.ParseResults) -> ast.PatternDecl:
    _, name, pattern, within, partition = toks[0]
    return ast.PatternDecl(name, pattern, within, partition, _span(loc))


# ------------------------------------------------------------------ headers


def _header(kind: str):  # noqa: ANN202 - parse-action factory
    def build(s: str, loc: int, toks: pp.ParseResults) -> Header:
        data = list(toks[0])
        if kind == "fn":
            _, name, params, returns = data
            params = tuple(ast.Param(p[0], p[1], _span(loc)) for p in params)
            return Header(kind, (name, params, returns), loc)
        if kind == "event":
            _, name, extends, fields = data
            return Header(kind, (name, extends, tuple((f[0], f[1]) for f in fields)), loc)
        if kind == "for":
            _, var, iterable = data
            return Header(kind, (var, iterable), loc)
        return Header(kind, tuple(data[1:]), loc)

    return build


def _line_with_header(s: str, loc: int, toks: pp.ParseResults) -> Header:
    header, inline = toks[0]
    return Header(header.kind, header.data, header.loc, tuple(inline))


def _attach() -> None:
    actions = {
        g.ATOM: _atom, g.PLAIN_ATOM: _atom, g.FLAT_EXPR: _flat, g.OPERAND: _operand,
        g.CALL_SUFFIX: _call_suffix, g.INDEX_SUFFIX: _index_suffix, g.PREFIXES: _prefixes,
        g.KWARG: _kwarg, g.ARG: _arg, g.CHAIN: _expr,
        g.BINOP: _binop, g.IF_EXPR: _if_expr, g.ARRAY: _array, g.MAP_ENTRY: _map_entry,
        g.MAP: _map, g.LET_STMT: _let, g.ASSIGN_STMT: _assign, g.RETURN_STMT: _return,
        g.EMIT_STMT: _emit, g.CONNECTOR_DECL: _connector, g.CONTEXT_DECL: _context,
        g.IMPORT_DECL: _import, g.MERGE_ITEM: _merge_item, g.OPERATION: _operation,
        g.NEGATION: _negation, g.STEP: _step, g.STREAM_DECL: _stream, g.P_ITEM: _p_item,
        g.P_SEQ: _p_seq, g.P_AND: _p_binary(ast.PatternAnd), g.P_OR: _p_binary(ast.PatternOr),
        g.PATTERN_DECL: _pattern,
    }  # fmt: skip
    for element, action in actions.items():
        element.set_parse_action(action)
    for element, kind in (
        (g.MERGE_SRC, "merge"), (g.JOIN_SRC, "join"), (g.TIMER_SRC, "timer"),
        (g.EVENT_SRC, "event"),
    ):  # fmt: skip
        element.set_parse_action(_source(kind))
    for element, kind in (
        (g.FN_HEADER, "fn"), (g.IF_HEADER, "if"), (g.ELIF_HEADER, "elif"),
        (g.ELSE_HEADER, "else"), (g.WHILE_HEADER, "while"), (g.FOR_HEADER, "for"),
        (g.EVENT_HEADER, "event"),
    ):  # fmt: skip
        element.set_parse_action(_header(kind))
    g.MEMBER_SUFFIX.set_parse_action(lambda s, loc, toks: toks[0])
    g.KWNAME.set_parse_action(lambda s, loc, toks: toks[0].split(":")[0].strip())
    g.BREAK_STMT.set_parse_action(lambda s, loc, toks: ast.Break(_span(loc)))
    g.CONTINUE_STMT.set_parse_action(lambda s, loc, toks: ast.Continue(_span(loc)))
    g.EXPR_STMT.set_parse_action(lambda s, loc, toks: ast.ExprStmt(toks[0][0], _span(loc)))
    g.LINE_HEADER.set_parse_action(_line_with_header)


_attach()
