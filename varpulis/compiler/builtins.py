"""The registry of VPL builtin functions: a plain dict filled by a decorator.

Every builtin is a plain Python function of evaluated VPL values. Contract:
builtins never raise for bad input; a MISSING argument or an argument of the
wrong type gives MISSING, except that ``coalesce`` skips MISSING arguments and
the ``is_*`` predicates answer False for MISSING (a missing value has no type).
Only resource limits raise :class:`VPLRuntimeError` (a ``range`` longer than
:data:`MAX_RANGE`, an oversized ``pow``, ``to_string`` of an int too long to
print). Results are always new values:
arguments are never mutated, so ``push``/``pop``/``set``/``sort``/``reverse``
return copies. Math functions follow IEEE 754 on domain errors (``sqrt(-1)`` is
NaN, ``log(0)`` is -inf). Arity is read from each function's signature and
checked at compile time; builtins marked ``pure`` may be folded there when their
arguments are constants; ``needs_ctx`` builtins receive the
:class:`~varpulis.compiler.evalctx.EvalContext` first. A user ``fn`` of the
same name shadows a builtin.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from varpulis.compiler.values import (
    MISSING,
    display,
    op_in,
    op_index,
    op_pow,
    type_name,
)
from varpulis.errors import VPLRuntimeError

__all__ = ["BUILTINS", "MAX_RANGE", "Builtin", "builtin"]

#: Longest list ``range(...)`` or an ``a..b`` expression may build.
MAX_RANGE = 10_000_000


@dataclass(frozen=True, slots=True)
class Builtin:
    """One registered builtin: its callable and its arity (``max_args`` None = variadic)."""

    name: str
    func: Callable[..., Any]
    min_args: int
    max_args: int | None
    pure: bool = True
    needs_ctx: bool = False


#: Builtin name → :class:`Builtin`.
BUILTINS: dict[str, Builtin] = {}


def _arity(func: Callable[..., Any], skip: int) -> tuple[int, int | None]:
    params = list(inspect.signature(func).parameters.values())[skip:]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        fixed = [p for p in params if p.kind is not p.VAR_POSITIONAL]
        return sum(p.default is p.empty for p in fixed), None
    return sum(p.default is p.empty for p in params), len(params)


def builtin(
    *names: str, pure: bool = True, needs_ctx: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function under each of *names*; arity from its signature."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        low, high = _arity(func, 1 if needs_ctx else 0)
        for name in names:
            BUILTINS[name] = Builtin(name, func, low, high, pure, needs_ctx)
        return func

    return register


def _num(x: Any) -> bool:
    t = type(x)
    return t is int or t is float


def _all_str(*xs: Any) -> bool:
    return all(type(x) is str for x in xs)


_ABSENT: Any = object()  # an omitted optional argument (MISSING is a passed one)

# --------------------------------------------------------------------- numbers


@builtin("abs")
def _abs(x: Any) -> Any:
    return abs(x) if _num(x) else MISSING


def _ieee(fn: Callable[[float], float]) -> Callable[[Any], Any]:
    def apply(x: Any) -> Any:
        if not _num(x):
            return MISSING
        try:
            return fn(x)
        except ValueError:
            return math.nan
        except OverflowError:
            return math.inf

    return apply


for _name, _fn in {
    "sqrt": math.sqrt,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}.items():
    builtin(_name)(_ieee(_fn))
del _name, _fn


def _logarithm(fn: Callable[[float], float]) -> Callable[[Any], Any]:
    def apply(x: Any) -> Any:
        if not _num(x):
            return MISSING
        if x == 0:
            return -math.inf
        return math.nan if x < 0 else fn(x)

    return apply


builtin("log")(_logarithm(math.log))
builtin("log10")(_logarithm(math.log10))


def _to_integral(fn: Callable[[float], int]) -> Callable[[Any], Any]:
    def apply(x: Any) -> Any:
        t = type(x)
        if t is int:
            return x
        if t is float and math.isfinite(x):
            return fn(x)
        return MISSING

    return apply


def _round_half_away(x: float) -> int:
    magnitude = abs(x)
    r = math.floor(magnitude)
    if magnitude - r >= 0.5:
        r += 1
    return -r if x < 0 else r


builtin("floor")(_to_integral(math.floor))
builtin("ceil")(_to_integral(math.ceil))
builtin("round")(_to_integral(_round_half_away))


@builtin("pow")
def _pow(a: Any, b: Any) -> Any:
    return op_pow(a, b) if _num(a) and _num(b) else MISSING


def _extreme(pick: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    if not all(map(_num, args)):
        return MISSING
    result = pick(args)
    return float(result) if any(type(x) is float for x in args) else result


@builtin("min")
def _min(a: Any, b: Any, *rest: Any) -> Any:
    return _extreme(min, (a, b, *rest))


@builtin("max")
def _max(a: Any, b: Any, *rest: Any) -> Any:
    return _extreme(max, (a, b, *rest))


@builtin("clamp")
def _clamp(x: Any, low: Any, high: Any) -> Any:
    if not (_num(x) and _num(low) and _num(high)) or low > high:
        return MISSING
    result = low if x < low else high if x > high else x
    return float(result) if float in (type(x), type(low), type(high)) else result


@builtin("sum")
def _sum(xs: Any) -> Any:
    if type(xs) is not list or not all(map(_num, xs)):
        return MISSING
    if all(type(x) is int for x in xs):
        return sum(xs)
    return math.fsum(xs)


@builtin("avg")
def _avg(xs: Any) -> Any:
    if type(xs) is not list or not xs or not all(map(_num, xs)):
        return MISSING
    return math.fsum(xs) / len(xs)


@builtin("range")
def _range(a: Any, b: Any = _ABSENT, step: Any = _ABSENT) -> Any:
    start, stop = (0, a) if b is _ABSENT else (a, b)
    step = 1 if step is _ABSENT else step
    if not (type(start) is int and type(stop) is int and type(step) is int) or step == 0:
        return MISSING
    span = range(start, stop, step)
    try:
        too_long = len(span) > MAX_RANGE
    except OverflowError:  # longer than sys.maxsize
        too_long = True
    if too_long:
        message = f"range({start}, {stop}, {step}) is longer than {MAX_RANGE} elements"
        raise VPLRuntimeError(message)
    return list(span)


# -------------------------------------------------------- arrays, maps, strings


@builtin("len")
def _len(x: Any) -> Any:
    t = type(x)
    return len(x) if t is str or t is list or t is dict else MISSING


@builtin("first")
def _first(xs: Any) -> Any:
    return xs[0] if type(xs) is list and xs else MISSING


@builtin("last")
def _last(xs: Any) -> Any:
    return xs[-1] if type(xs) is list and xs else MISSING


@builtin("push")
def _push(xs: Any, value: Any) -> Any:
    return [*xs, value] if type(xs) is list and value is not MISSING else MISSING


@builtin("pop")
def _pop(xs: Any) -> Any:
    """The array without its last element (``pop([])`` is MISSING)."""
    return xs[:-1] if type(xs) is list and xs else MISSING


@builtin("reverse")
def _reverse(x: Any) -> Any:
    return x[::-1] if type(x) is list or type(x) is str else MISSING


@builtin("sort")
def _sort(xs: Any) -> Any:
    """Ascending; all numbers or all strings, otherwise MISSING."""
    if type(xs) is not list:
        return MISSING
    if all(map(_num, xs)) or _all_str(*xs):
        return sorted(xs)
    return MISSING


@builtin("contains")
def _contains(container: Any, item: Any) -> Any:
    t = type(container)
    if item is MISSING or t not in (list, dict, str):
        return MISSING
    if t is not list and type(item) is not str:
        return MISSING
    return op_in(item, container)


@builtin("keys")
def _keys(m: Any) -> Any:
    return list(m) if type(m) is dict else MISSING


@builtin("values")
def _values(m: Any) -> Any:
    return list(m.values()) if type(m) is dict else MISSING


@builtin("get")
def _get(container: Any, key: Any, default: Any = _ABSENT) -> Any:
    """``get(arr, i)``, ``get(map, k)``, ``get(str, i)``; *default* when absent."""
    t = type(container)
    if t is not list and t is not dict and t is not str:
        return MISSING
    value = op_index(container, key)
    if value is MISSING and default is not _ABSENT:
        return default
    return value


@builtin("set")
def _set(container: Any, key: Any, value: Any) -> Any:
    """A copy of the array or map with one element replaced or added."""
    if value is MISSING:
        return MISSING
    if type(container) is list and type(key) is int and -len(container) <= key < len(container):
        copy = list(container)
        copy[key] = value
        return copy
    if type(container) is dict and type(key) is str:
        return {**container, key: value}
    return MISSING


@builtin("concat")
def _concat(*parts: Any) -> Any:
    """Arrays concatenated when all are arrays, else display forms joined."""
    if any(p is MISSING for p in parts):
        return MISSING
    if all(type(p) is list for p in parts):
        return [x for p in parts for x in p]
    return "".join(map(display, parts))


@builtin("trim")
def _trim(s: Any) -> Any:
    return s.strip() if type(s) is str else MISSING


@builtin("lower", "lowercase")
def _lower(s: Any) -> Any:
    return s.lower() if type(s) is str else MISSING


@builtin("upper", "uppercase")
def _upper(s: Any) -> Any:
    return s.upper() if type(s) is str else MISSING


@builtin("split")
def _split(s: Any, sep: Any) -> Any:
    return s.split(sep) if _all_str(s, sep) and sep else MISSING


@builtin("join")
def _join(xs: Any, sep: Any = "") -> Any:
    """Elements in display form (strings unquoted) separated by *sep*."""
    if type(xs) is not list or type(sep) is not str:
        return MISSING
    return sep.join(map(display, xs))


@builtin("replace")
def _replace(s: Any, old: Any, new: Any) -> Any:
    return s.replace(old, new) if _all_str(s, old, new) else MISSING


@builtin("starts_with")
def _starts_with(s: Any, prefix: Any) -> Any:
    return s.startswith(prefix) if _all_str(s, prefix) else MISSING


@builtin("ends_with")
def _ends_with(s: Any, suffix: Any) -> Any:
    return s.endswith(suffix) if _all_str(s, suffix) else MISSING


@builtin("substring")
def _substring(s: Any, start: Any, end: Any = _ABSENT) -> Any:
    """Characters ``start <= i < end``; bounds outside ``0..len`` or reversed → MISSING."""
    if type(s) is not str or type(start) is not int:
        return MISSING
    end = len(s) if end is _ABSENT else end
    if type(end) is not int or not 0 <= start <= end <= len(s):
        return MISSING
    return s[start:end]


# ---------------------------------------------------------- types, conversion


@builtin("to_string")
def _to_string(v: Any) -> Any:
    return MISSING if v is MISSING else display(v)


_INT_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")


@builtin("to_int")
def _to_int(v: Any) -> Any:
    """Ints as they are, floats truncated, bools 0/1, decimal integer strings."""
    t = type(v)
    if t is int:
        return v
    if t is bool:
        return int(v)
    if t is float:
        return int(v) if math.isfinite(v) else MISSING
    if t is str and _INT_TEXT.fullmatch(v):
        try:
            return int(v)
        except ValueError:  # over Python's digit limit
            return MISSING
    return MISSING


@builtin("to_float")
def _to_float(v: Any) -> Any:
    """Numbers and bools as floats; strings Python's ``float()`` accepts."""
    t = type(v)
    if t is float:
        return v
    try:
        if t is int or t is bool:
            return float(v)
        if t is str:
            return float(v)
    except (ValueError, OverflowError):
        return MISSING
    return MISSING


@builtin("type_of")
def _type_of(v: Any) -> Any:
    return MISSING if v is MISSING else type_name(v)


def _is_type(*types: type) -> Callable[[Any], bool]:
    def predicate(v: Any) -> bool:
        return type(v) in types

    return predicate


builtin("is_null")(_is_type(type(None)))
builtin("is_int")(_is_type(int))
builtin("is_float")(_is_type(float))
builtin("is_number")(_is_type(int, float))
builtin("is_string")(_is_type(str))
builtin("is_bool")(_is_type(bool))
builtin("is_array")(_is_type(list))
builtin("is_map")(_is_type(dict))


@builtin("is_missing")
def _is_missing(v: Any) -> bool:
    return v is MISSING


@builtin("coalesce")
def _coalesce(first: Any, *rest: Any) -> Any:
    """The first argument that is neither null nor MISSING; else null if one was
    null, else MISSING."""
    seen_null = False
    for v in (first, *rest):
        if v is None:
            seen_null = True
        elif v is not MISSING:
            return v
    return None if seen_null else MISSING


@builtin("now", pure=False, needs_ctx=True)
def _now(ctx: Any) -> Any:
    """The triggering event's time in epoch milliseconds (deterministic, not the clock)."""
    event = ctx.event
    return MISSING if event is None else event.timestamp // 1_000_000
