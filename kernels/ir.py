"""The SIMT kernel IR: a tiny typed language that :mod:`kernels.vectorize` runs on lanes.

A kernel is a tuple of statements over named variables whose static type is one
of :data:`TYPES` (``"int"`` = int64, ``"float"`` = float64, ``"bool"``). Every
node is a frozen, slotted dataclass (hashable, picklable) and carries no
behaviour. Function calls are already inlined: a callee's body is a
:class:`Frame` whose :class:`Return` statements retire lanes from that frame.
Front ends (``varpulis.compiler.simt``) guarantee what the executor relies on:
every variable read is definitely assigned before, each variable keeps one
type, ``break`` never targets a :class:`For`, ``return`` never crosses a
:class:`For` of its own frame, and a variable assigned inside a :class:`For`
body is private to one iteration (never read before its assignment in the
body, never read after the loop). Names starting with ``$`` are reserved for
the executor.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ARITH",
    "COMPARE",
    "TYPES",
    "Assign",
    "Bin",
    "Break",
    "Cmp",
    "Const",
    "Continue",
    "Emit",
    "Expr",
    "For",
    "Frame",
    "If",
    "Logic",
    "Neg",
    "Not",
    "Return",
    "Select",
    "Stmt",
    "Var",
    "While",
]

#: Static types a variable or expression may have.
TYPES = ("int", "float", "bool")
#: Arithmetic operators of :class:`Bin` (``/`` truncates on two ints, VPL style).
ARITH = frozenset({"+", "-", "*", "/", "%", "&", "|", "^"})
#: Comparison operators of :class:`Cmp`.
COMPARE = frozenset({"==", "!=", "<", "<=", ">", ">="})


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Const:
    """A literal of type ``type`` (an int within int64, a finite float, a bool)."""

    value: int | float | bool
    type: str


@dataclass(frozen=True, slots=True)
class Var:
    """The value of variable ``name`` (of type ``type``)."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class Bin:
    """``left op right`` on numbers (ints only for ``& | ^``); ``type`` is the result's."""

    op: str
    left: Expr
    right: Expr
    type: str


@dataclass(frozen=True, slots=True)
class Cmp:
    """``left op right`` → bool; numbers compare exactly across int/float, bools by
    ``==``/``!=`` only (the front end folds the other mixes to constants)."""

    op: str
    left: Expr
    right: Expr
    type: str = "bool"


@dataclass(frozen=True, slots=True)
class Logic:
    """``left and right`` / ``left or right`` on bools."""

    op: str
    left: Expr
    right: Expr
    type: str = "bool"


@dataclass(frozen=True, slots=True)
class Not:
    """``not operand`` on a bool."""

    operand: Expr
    type: str = "bool"


@dataclass(frozen=True, slots=True)
class Neg:
    """``-operand`` on a number."""

    operand: Expr
    type: str


@dataclass(frozen=True, slots=True)
class Select:
    """``if cond then then else orelse`` (both arms of type ``type``)."""

    cond: Expr
    then: Expr
    orelse: Expr
    type: str


Expr = Const | Var | Bin | Cmp | Logic | Not | Neg | Select


# ----------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class Assign:
    """``name = value`` for every running lane."""

    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class If:
    """``if``/``elif`` branches (condition, body) and the ``else`` body."""

    branches: tuple[tuple[Expr, tuple[Stmt, ...]], ...]
    orelse: tuple[Stmt, ...] = ()


@dataclass(frozen=True, slots=True)
class While:
    """``while cond: body`` per lane; iterations count against ``frame``'s step budget.

    ``private`` names the variables of ``frame``: dead for a lane that returns
    from the frame, so they need not be kept for it.
    """

    cond: Expr
    body: tuple[Stmt, ...]
    frame: int
    private: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class For:
    """``for var in start..stop`` (``..=`` when ``inclusive``): one lane per iteration.

    Float bounds are truncated toward zero; a non-finite bound gives no iteration.
    """

    var: str
    start: Expr
    stop: Expr
    inclusive: bool
    body: tuple[Stmt, ...]
    frame: int


@dataclass(frozen=True, slots=True)
class Return:
    """Retire the lane from ``frame``; with a value, it is the frame's result."""

    frame: int
    value: Expr | None = None


@dataclass(frozen=True, slots=True)
class Break:
    """Leave the innermost :class:`While`."""


@dataclass(frozen=True, slots=True)
class Continue:
    """Skip to the next iteration of the innermost loop."""


@dataclass(frozen=True, slots=True)
class Emit:
    """Produce one row of ``event_type`` with ``fields`` (name, value) in order.

    ``site`` tells emit statements apart (rows of one site share a schema).
    """

    site: int
    event_type: str
    fields: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class Frame:
    """An inlined call: run ``body`` (frame id ``frame``); lanes retired by its
    ``Return`` resume after it. With ``result``, the returned value is assigned
    to that variable (``type``); a lane that ends the body without a value makes
    the kernel refuse the call (the caller falls back)."""

    frame: int
    body: tuple[Stmt, ...]
    result: str | None = None
    type: str | None = None


Stmt = Assign | If | While | For | Return | Break | Continue | Emit | Frame
