"""The one entry point from VPL text to an AST: :func:`parse` (and :func:`parse_file`).

The text is cut into logical lines (``source.split_lines``); each is matched
by the grammar with AST-building actions (``builder``); block headers get the
more-indented lines after them as their body, Python style. A top-level
``for v in a..b:`` with integer-literal bounds is expanded at parse time: its
body is parsed once per value with ``{v}`` replaced, so declarations such as
``context t{r}{c}`` can be generated. pyparsing exceptions never leak: every
failure is a :class:`~varpulis.errors.VPLSyntaxError` with an exact line,
column, caret snippet and, where a common mistake is recognised, a hint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyparsing as pp

from varpulis.errors import VPLSyntaxError, caret_snippet, line_col
from varpulis.lang import ast
from varpulis.lang import grammar as g
from varpulis.lang.builder import BuildError, Header
from varpulis.lang.hints import syntax_hint
from varpulis.lang.source import (
    LogicalLine,
    blank_comments,
    map_back,
    split_lines,
    substitute,
)

__all__ = ["parse", "parse_file"]


def _whole(element: pp.ParserElement) -> pp.ParserElement:
    full = element + pp.StringEnd().set_name("end of line")
    full.parse_with_tabs()
    full.streamline()
    return full


_SIMPLE = _whole(g.SIMPLE_STMTS)
_ONE = {word: _whole(element) for word, element in g.ONE_STMT.items()}
_ASSIGN = re.compile(r"\s*:=")
_FIELDS = _whole(g.EVENT_FIELDS)
_BY_WORD = {word: _whole(element) for word, element in g.STATEMENTS.items()}
_FIRST_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IF = _BY_WORD["if"]
_THEN = re.compile(r"\bthen\b")
_FOUND = re.compile(r"[^ \t\r\n]{1,20}")

_TOP_ONLY = (ast.StreamDecl, ast.ConnectorDecl, ast.ContextDecl, ast.PatternDecl, ast.Import)
_FN_ONLY = (ast.Return, ast.Break, ast.Continue, ast.Emit)
_MAX_EXPANSION = 10_000


def parse(source: str, filename: str | None = None) -> ast.Program:
    """Parse VPL *source* into a :class:`~varpulis.lang.ast.Program`.

    Raises VPLSyntaxError (line, column, snippet, hint) on any invalid input;
    never another exception type.
    """
    try:
        lines = split_lines(source)
        decls = _Assembler(source, filename).block(lines, {}, top=True)
    except VPLSyntaxError as exc:
        if filename and exc.filename is None:
            exc = VPLSyntaxError(exc.message, source=source, offset=exc.offset,
                                 hint=exc.hint, filename=filename)  # fmt: skip
        raise exc from None
    except RecursionError:
        msg = "the program is nested too deeply to parse"
        raise VPLSyntaxError(msg, source=source, offset=0, filename=filename) from None
    return ast.Program(tuple(decls), source, filename)


def parse_file(path: str | Path) -> ast.Program:
    """Parse the VPL file at *path*, splicing in the declarations of its imports.

    ``import "x.vpl"`` is resolved relative to the importing file; a file
    imported several times is included once; an import cycle is an error.
    """
    path = Path(path).resolve()
    source = path.read_text(encoding="utf-8")
    decls = _splice(parse(source, filename=str(path)), path, {path}, (path,))
    return ast.Program(tuple(decls), source, str(path))


def _splice(
    program: ast.Program, path: Path, included: set[Path], stack: tuple[Path, ...]
) -> list[Any]:
    decls: list[Any] = []
    for decl in program.decls:
        if not isinstance(decl, ast.Import):
            decls.append(decl)
            continue
        target = (path.parent / decl.path).resolve()
        where = {"source": program.source, "offset": decl.span.start, "filename": str(path)}
        if target in stack:
            msg = f"import cycle: {decl.path!r} is already being imported"
            raise VPLSyntaxError(msg, **where)
        if target in included:
            continue
        if not target.is_file():
            msg = f"imported file {decl.path!r} not found (looked in {str(target.parent)!r})"
            raise VPLSyntaxError(msg, **where)
        included.add(target)
        imported = parse(target.read_text(encoding="utf-8"), filename=str(target))
        decls.extend(_splice(imported, target, included, (*stack, target)))
    return decls


class _Assembler:
    """Parses logical lines and nests block bodies by indentation."""

    def __init__(self, source: str, filename: str | None) -> None:
        self.source, self.filename = source, filename
        self.code = blank_comments(source)  # what the grammar sees: same offsets

    # -------------------------------------------------------------- lines

    def parse_line(
        self, line: LogicalLine, env: Mapping[str, int], grammar: Any = None
    ) -> list[Any]:
        """Match one logical line; return its AST nodes or a Header."""
        text = self.code[: line.end]
        points = None
        if env:
            new, points = substitute(self.code[line.start : line.end], env)
            text = self.code[: line.start] + new
        if grammar is None:
            grammar = self.grammar_for(text, line.start)
        pp.ParserElement.reset_cache()
        try:
            _, tokens = grammar._parse(text, line.start)
        except pp.ParseBaseException as exc:
            raise self._error(exc.loc, self._describe(exc), line, points) from None
        except BuildError as exc:
            raise self._error(exc.loc, exc.message, line, points, exc.hint) from None
        return list(tokens)

    @staticmethod
    def grammar_for(text: str, start: int) -> Any:
        """Pick the grammar of the logical line at *start* by its first word.

        Dispatching on the word spares pyparsing from trying every statement
        form in turn (parse time is proportional to the elements tried).
        """
        word = _FIRST_WORD.match(text, start)
        key = word.group() if word else ""
        grammar = _BY_WORD.get(key)
        if grammar is not None:
            if grammar is _IF and _THEN.search(text, start):
                return _ONE[""]  # 'if c then a else b' is an expression
            return grammar
        if ";" in text[start:]:
            return _SIMPLE
        if key not in _ONE and word and _ASSIGN.match(text, word.end()):
            key = ":="
        return _ONE.get(key, _ONE[""])

    def _describe(self, exc: pp.ParseBaseException) -> str:
        expected = exc.msg
        if exc.loc >= len(exc.pstr) or exc.pstr[exc.loc] == "\n":
            return f"{expected}, found end of line"
        found = _FOUND.match(exc.pstr, exc.loc).group()
        return f"{expected}, found {found!r}"

    def _error(
        self,
        loc: int,
        message: str,
        line: LogicalLine,
        points: list[tuple[int, int]] | None = None,
        hint: str | None = None,
    ) -> VPLSyntaxError:
        if points is not None:
            loc = line.start + map_back(points, max(0, loc - line.start))
        loc = min(loc, line.end)
        if hint is None:
            lineno, column = line_col(self.source, loc)
            text = caret_snippet(self.source, lineno, column).split("\n")[0]
            hint = syntax_hint(text.split(" | ", 1)[1], column)
        return VPLSyntaxError(message, source=self.source, offset=loc, hint=hint,
                              filename=self.filename)  # fmt: skip

    def fail(self, line: LogicalLine, message: str, hint: str | None = None) -> VPLSyntaxError:
        return VPLSyntaxError(message, source=self.source, offset=line.start, hint=hint,
                              filename=self.filename)  # fmt: skip

    # -------------------------------------------------------------- blocks

    def block(self, lines: list[LogicalLine], env: Mapping[str, int], top: bool) -> list[Any]:
        """Assemble *lines* (one block, all at its indentation) into nodes."""
        out: list[Any] = []
        if not lines:
            return out
        indent = lines[0].indent
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.indent != indent:
                hint = "indent only the body of fn/if/elif/else/while/for/event"
                raise self.fail(line, "unexpected indentation", hint)
            body_end = i + 1
            while body_end < len(lines) and lines[body_end].indent > indent:
                body_end += 1
            nodes = self.parse_line(line, env)
            if nodes and isinstance(nodes[0], Header):
                i = self.header(nodes[0], line, lines, i, body_end, env, top, out)
                continue
            if body_end > i + 1:
                raise self.fail(lines[i + 1], "unexpected indentation",
                                "only a line ending in ':' opens an indented block")  # fmt: skip
            for node in nodes:
                self.check_place(node, line, top)
                out.append(node)
            i = body_end
        return out

    def check_place(self, node: Any, line: LogicalLine, top: bool) -> None:
        if not top and isinstance(node, _TOP_ONLY):
            word = type(node).__name__.replace("Decl", "").lower()
            msg = f"'{word}' declarations are only allowed at the top level"
            raise self.fail(line, msg)
        if top and isinstance(node, _FN_ONLY):
            word = type(node).__name__.lower()
            raise self.fail(line, f"'{word}' is only allowed inside a fn body")

    def body(
        self, header: Header, line: LogicalLine, lines: list[LogicalLine], start: int, end: int,
        env: Mapping[str, int], top: bool,
    ) -> list[Any]:  # fmt: skip
        inner = lines[start + 1 : end]
        if header.inline:
            if inner:
                raise self.fail(inner[0], "unexpected indentation after an inline block body")
            for node in header.inline:
                self.check_place(node, line, top)
            return list(header.inline)
        if not inner:
            msg = f"expected an indented block after '{header.kind}'"
            raise self.fail(line, msg, "indent the body on the lines after the ':'")
        return self.block(inner, env, top)

    def header(
        self, header: Header, line: LogicalLine, lines: list[LogicalLine], i: int, end: int,
        env: Mapping[str, int], top: bool, out: list[Any],
    ) -> int:  # fmt: skip
        """Build the block opened by *header*; append to *out*; return the next index."""
        kind = header.kind
        span = ast.Span(line.start, lines[end - 1].end)
        if kind == "fn":
            if not top:
                raise self.fail(line, "a fn must be declared at the top level")
            name, params, returns = header.data
            out.append(ast.FnDecl(name, params, returns,
                                  tuple(self.body(header, line, lines, i, end, env, False)),
                                  span))  # fmt: skip
        elif kind == "event":
            if not top:
                raise self.fail(line, "an event must be declared at the top level")
            name, extends, fields = header.data
            fields = list(fields)
            for field_line in lines[i + 1 : end]:
                fields.extend((f[0], f[1]) for f in self.parse_line(field_line, env, _FIELDS))
            out.append(ast.EventDecl(name, tuple(fields), extends, span))
        elif kind in ("elif", "else"):
            raise self.fail(line, f"'{kind}' without a matching 'if'")
        elif kind == "if":
            return self.if_chain(header, line, lines, i, end, env, top, out)
        elif kind == "while":
            if top:
                raise self.fail(line, "'while' is only allowed inside a fn body")
            body = self.body(header, line, lines, i, end, env, top)
            out.append(ast.While(header.data[0], tuple(body), span))
        elif top:
            out.extend(self.expand(header, line, lines[i + 1 : end], env))
        else:
            var, iterable = header.data
            body = self.body(header, line, lines, i, end, env, top)
            out.append(ast.For(var, iterable, tuple(body), span))
        return end

    def if_chain(
        self, header: Header, line: LogicalLine, lines: list[LogicalLine], i: int, end: int,
        env: Mapping[str, int], top: bool, out: list[Any],
    ) -> int:  # fmt: skip
        if top:
            raise self.fail(line, "'if' statements are only allowed inside a fn body",
                            "use 'if c then a else b' for a value")  # fmt: skip
        branches = [(header.data[0], tuple(self.body(header, line, lines, i, end, env, top)))]
        orelse: tuple[Any, ...] = ()
        start = line.start
        while end < len(lines) and lines[end].indent == line.indent:
            nodes = self.parse_line(lines[end], env)
            nxt = nodes[0] if nodes else None
            if not isinstance(nxt, Header) or nxt.kind not in ("elif", "else"):
                break
            i = end
            line = lines[i]
            end = i + 1
            while end < len(lines) and lines[end].indent > line.indent:
                end += 1
            body = tuple(self.body(nxt, line, lines, i, end, env, top))
            if nxt.kind == "elif":
                branches.append((nxt.data[0], body))
                continue
            orelse = body
            break
        out.append(ast.If(tuple(branches), orelse, ast.Span(start, lines[end - 1].end)))
        return end

    def expand(
        self, header: Header, line: LogicalLine, body: list[LogicalLine], env: Mapping[str, int]
    ) -> list[Any]:
        """Expand a top-level ``for v in a..b:`` over its body's declarations."""
        var, iterable = header.data
        bounds = _literal_range(iterable)
        if bounds is None:
            msg = "a top-level 'for' needs integer literal bounds, as in 'for i in 0..4:'"
            raise self.fail(line, msg)
        start, stop = bounds
        if stop - start > _MAX_EXPANSION:
            msg = f"a top-level 'for' expands at most {_MAX_EXPANSION} times"
            raise self.fail(line, msg)
        if header.inline:
            raise self.fail(line, "a top-level 'for' needs an indented body of declarations")
        if not body:
            raise self.fail(line, "expected an indented block after 'for'")
        out: list[Any] = []
        for value in range(start, stop):
            out.extend(self.block(body, {**env, var: value}, top=True))
        return out


def _literal_range(node: Any) -> tuple[int, int] | None:
    """``a..b`` / ``a..=b`` with integer literal bounds → (start, stop exclusive)."""
    if not isinstance(node, ast.Range):
        return None
    bounds = []
    for bound in (node.start, node.stop):
        sign = 1
        if isinstance(bound, ast.Unary) and bound.op == "-":
            sign, bound = -1, bound.operand
        if not isinstance(bound, ast.Literal) or type(bound.value) is not int:
            return None
        bounds.append(sign * bound.value)
    return bounds[0], bounds[1] + (1 if node.inclusive else 0)
