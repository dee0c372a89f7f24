"""Compile-time scope of one VPL program and the namespace its generated code runs in.

A :class:`Scope` knows the program's top-level constants (``const``/``let``/
``var``/``:=`` at top level, DESIGN §4.1.5), its user functions (by signature,
then compiled), the sequence aliases visible where an expression is compiled,
and the source text used to give errors a position. All code generated for one
program shares one namespace dict: its ``__builtins__`` is empty, so generated
code reaches nothing but the helpers the compiler installed, the literal
constants (``_k<N>``), the constants (``c_<name>``) and the user functions
(``u_<name>``). VPL names are validated identifiers and only ever appear with
such a prefix (locals are ``v_<name>``): user text never reaches Python's
compiler raw. :meth:`Scope.with_aliases` returns a view sharing everything but
the aliases. A scope is built, filled and frozen by one thread at load time;
afterwards the namespace is only read (constants no longer change).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from varpulis.compiler.values import MISSING
from varpulis.errors import VPLSemanticError
from varpulis.lang.ast import FnDecl

__all__ = ["Scope", "check_identifier"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_identifier(name: object) -> bool:
    """Tell whether *name* is a VPL identifier (ASCII letters, digits, ``_``)."""
    return type(name) is str and _IDENTIFIER.fullmatch(name) is not None


class _Program:
    """State shared by every view of one program's scope."""

    def __init__(self, source: str, filename: str | None) -> None:
        self.source = source
        self.filename = filename
        self.namespace: dict[str, Any] = {"__builtins__": {}, "_M": MISSING}
        self.constants: dict[str, str] = {}  # name -> declaring kind
        self.functions: dict[str, FnDecl] = {}
        self.literals: dict[tuple[type, Any], str] = {}
        self.counter = itertools.count(1)
        self.frozen = False


class Scope:
    """Names visible to compiled code: constants, functions, aliases (see module doc)."""

    __slots__ = ("_p", "aliases")

    def __init__(
        self, *, source: str = "", filename: str | None = None, aliases: Iterable[str] = ()
    ) -> None:
        self._p = _Program(source, filename)
        self.aliases: frozenset[str] = frozenset(aliases)

    def with_aliases(self, aliases: Iterable[str]) -> Scope:
        """A view of the same program where *aliases* name sequence captures."""
        view = Scope.__new__(Scope)
        view._p, view.aliases = self._p, frozenset(aliases)
        return view

    # ----------------------------------------------------------- namespace

    @property
    def namespace(self) -> dict[str, Any]:
        """The globals of all generated code of this program (shared, not a copy)."""
        return self._p.namespace

    def install(self, helpers: Mapping[str, Any]) -> None:
        """Make runtime *helpers* visible to generated code (existing names are kept)."""
        namespace = self._p.namespace
        for name, value in helpers.items():
            namespace.setdefault(name, value)

    def fresh(self, prefix: str) -> str:
        """A new, unused global name starting with *prefix* (which starts with ``_``)."""
        return f"{prefix}{next(self._p.counter)}"

    def literal(self, value: Any) -> str:
        """The global name holding the constant *value* (strings, non-finite floats,
        tuples of strings); equal values share a name."""
        key = (type(value), repr(value) if type(value) is float else value)
        name = self._p.literals.get(key)
        if name is None:
            name = self._p.literals[key] = self.fresh("_k")
            self._p.namespace[name] = value
        return name

    def exec_source(self, text: str, name: str, node: Any = None) -> Any:
        """Compile generated Python *text*, run it in the namespace and return the
        global *name* it defines; an expression nested too deeply for Python's
        parser is a semantic error."""
        try:
            code = compile(text, f"<vpl {name}>", "exec")
        except (SyntaxError, RecursionError, MemoryError) as exc:
            # Python's parser limits nesting (about 200 parentheses); VPL's does not.
            message = f"expression too complex to compile: {type(exc).__name__}: {exc}"
            raise self.error(message, node) from None
        exec(code, self._p.namespace)
        return self._p.namespace[name]

    # ----------------------------------------------------------- constants

    def declare_constant(self, name: str, kind: str = "let", node: Any = None) -> None:
        """Record a top-level constant (value MISSING until :meth:`set_constant`)."""
        if not check_identifier(name):
            message = f"invalid name {name!r}"
            raise self.error(message, node)
        if name not in self._p.constants:
            self._p.constants[name] = kind
            self._p.namespace[f"c_{name}"] = MISSING

    def is_constant(self, name: str) -> bool:
        """Tell whether *name* is a declared top-level constant."""
        return name in self._p.constants

    def constant_kind(self, name: str) -> str | None:
        """``"const"``, ``"let"``, ``"var"`` or ``":="`` for a constant, else None."""
        return self._p.constants.get(name)

    def constant_value(self, name: str) -> Any:
        """The current value of constant *name* (MISSING before it is evaluated)."""
        return self._p.namespace.get(f"c_{name}", MISSING)

    def set_constant(self, name: str, value: Any) -> None:
        """Give the declared constant *name* its value (load time only)."""
        if self._p.frozen:
            message = f"constants are frozen; cannot set {name!r}"
            raise RuntimeError(message)
        self._p.namespace[f"c_{name}"] = value

    def freeze_constants(self) -> None:
        """Declare constant values final, so later compilations may inline them."""
        self._p.frozen = True

    @property
    def constants_frozen(self) -> bool:
        """True once :meth:`freeze_constants` was called."""
        return self._p.frozen

    def constant_names(self) -> list[str]:
        """Declared constants, in declaration order."""
        return list(self._p.constants)

    # ----------------------------------------------------------- functions

    def declare_function(self, decl: FnDecl) -> None:
        """Record a user function's signature so calls to it can be compiled."""
        if not check_identifier(decl.name):
            message = f"invalid function name {decl.name!r}"
            raise self.error(message, decl)
        if decl.name in self._p.functions:
            message = f"function {decl.name!r} is declared twice"
            raise self.error(message, decl)
        self._p.functions[decl.name] = decl

    def function_decl(self, name: str) -> FnDecl | None:
        """The declaration of user function *name*, or None."""
        return self._p.functions.get(name)

    def function_names(self) -> list[str]:
        """Declared user functions, in declaration order."""
        return list(self._p.functions)

    def function(self, name: str) -> Callable[..., Any]:
        """The compiled user function *name*: ``f(ctx, fields, *args)``."""
        return self._p.namespace[f"u_{name}"]

    # ---------------------------------------------------------------- errors

    def error(self, message: str, node: Any = None, hint: str | None = None) -> VPLSemanticError:
        """A :class:`VPLSemanticError` positioned at *node*'s span when there is source."""
        span = getattr(node, "span", None)
        offset = span.start if span is not None and self._p.source else 0
        return VPLSemanticError(
            message,
            source=self._p.source,
            offset=offset,
            hint=hint,
            filename=self._p.filename,
        )
