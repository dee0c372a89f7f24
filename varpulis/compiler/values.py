"""VPL runtime values and the semantics of every operator on them.

A VPL value is an int, float, str, bool, None (VPL ``null``), list (array) or
dict (map, string keys), or :data:`MISSING`, the "no such value" sentinel that
a missing field, an out-of-range index or a failed builtin produces. ``bool`` is
never a number here. The operator helpers (``op_*``) implement the decided
contract (DESIGN §4.1) exactly and are what compiled code calls whenever the
operand types are not known at compile time: arithmetic with a MISSING operand
gives MISSING, other type mixes raise :class:`VPLRuntimeError`; comparisons,
``in`` and ``is`` always return a bool (False when an operand is MISSING);
``and``/``or``/``not`` are three-valued with MISSING as unknown. Helpers never
mutate their arguments; integers are unbounded Python ints, but a single ``**``
or ``<<`` whose result would exceed :data:`MAX_INT_BITS` bits raises.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from varpulis.errors import VPLRuntimeError

__all__ = [
    "MAX_INT_BITS",
    "MISSING",
    "display",
    "is_number",
    "op_add",
    "op_and",
    "op_bitand",
    "op_bitor",
    "op_bitxor",
    "op_div",
    "op_eq",
    "op_ge",
    "op_gt",
    "op_in",
    "op_index",
    "op_invert",
    "op_is",
    "op_le",
    "op_lt",
    "op_mod",
    "op_mul",
    "op_ne",
    "op_neg",
    "op_not",
    "op_not_in",
    "op_or",
    "op_pow",
    "op_shl",
    "op_shr",
    "op_slice",
    "op_sub",
    "strict_eq",
    "type_name",
    "vpl_eq",
]

#: Largest integer result, in bits, that one ``**`` or ``<<`` may produce.
MAX_INT_BITS = 1_000_000


class _Missing:
    """The type of :data:`MISSING`; there is exactly one instance."""

    __slots__ = ()
    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        # Truth-testing MISSING is always a bug in compiled code or a helper.
        message = "MISSING has no truth value; compare it with 'is'"
        raise TypeError(message)

    def __reduce__(self) -> str:
        return "MISSING"


#: "No such value": distinct from None (VPL null); survives pickling as itself.
MISSING: Any = _Missing()

_TYPE_NAMES: dict[type, str] = {
    int: "int",
    float: "float",
    str: "string",
    bool: "bool",
    type(None): "null",
    list: "array",
    dict: "map",
    _Missing: "missing",
}


def type_name(value: Any) -> str:
    """Return the VPL type name of *value* (``"int"``, ``"string"``, ``"missing"``...)."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def is_number(value: Any) -> bool:
    """Tell whether *value* is an int or a float (a bool is not a number)."""
    t = type(value)
    return t is int or t is float


# ---------------------------------------------------------------- display form


def _display_float(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = repr(x)
    if "e" in text:
        text = format(Decimal(text), "f")
    return text[:-2] if text.endswith(".0") else text


def _quote(text: str) -> str:
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{body}"'


def _display_nested(value: Any) -> str:
    return _quote(value) if type(value) is str else display(value)


def display(value: Any) -> str:
    """Return the display form of *value* (what ``to_string`` and ``join`` produce).

    Ints in decimal; floats in their shortest round-trip form without exponent
    and without a trailing ``.0`` (``2.0`` → ``"2"``, ``1e21`` →
    ``"1000000000000000000000"``, NaN → ``"NaN"``, infinities ``"inf"``/``"-inf"``);
    strings as they are (quoted and escaped only inside arrays and maps);
    ``true``/``false``/``null``; arrays ``[1, "a"]``; maps ``{"k": 1}``.
    """
    t = type(value)
    if t is str:
        return value
    if t is bool:
        return "true" if value else "false"
    if t is int:
        try:
            return str(value)
        except ValueError:  # over Python's int-to-str digit limit
            message = f"integer with {value.bit_length()} bits is too large to display"
            raise VPLRuntimeError(message) from None
    if t is float:
        return _display_float(value)
    if value is None:
        return "null"
    if t is list:
        return "[" + ", ".join(map(_display_nested, value)) + "]"
    if t is dict:
        items = (f"{_quote(k)}: {_display_nested(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return repr(value)


# ------------------------------------------------------------ equality, order


def vpl_eq(a: Any, b: Any) -> bool:
    """VPL ``==`` on two defined values: int/float promote, bool is not a number,
    arrays element-wise, maps by key set and values; NaN equals nothing."""
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is list:
            return len(a) == len(b) and all(map(vpl_eq, a, b))
        if ta is dict:
            return a.keys() == b.keys() and all(vpl_eq(v, b[k]) for k, v in a.items())
        return a == b
    return ((ta is int and tb is float) or (ta is float and tb is int)) and a == b


def strict_eq(a: Any, b: Any) -> bool:
    """VPL ``is`` on two defined values: same type and equal, with no promotion."""
    ta = type(a)
    if ta is not type(b):
        return False
    if ta is list:
        return len(a) == len(b) and all(map(strict_eq, a, b))
    if ta is dict:
        return a.keys() == b.keys() and all(strict_eq(v, b[k]) for k, v in a.items())
    return a == b


def op_eq(a: Any, b: Any) -> bool:
    """``a == b``; False when either side is MISSING."""
    if a is MISSING or b is MISSING:
        return False
    return vpl_eq(a, b)


def op_ne(a: Any, b: Any) -> bool:
    """``a != b``; False when either side is MISSING (like every comparison)."""
    if a is MISSING or b is MISSING:
        return False
    return not vpl_eq(a, b)


def _ordered(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    return ((ta is int or ta is float) and (tb is int or tb is float)) or (ta is str and tb is str)


def op_lt(a: Any, b: Any) -> bool:
    """``a < b`` on two numbers (exact mixed int/float) or two strings; else False."""
    return _ordered(a, b) and a < b


def op_le(a: Any, b: Any) -> bool:
    """``a <= b``; see :func:`op_lt`."""
    return _ordered(a, b) and a <= b


def op_gt(a: Any, b: Any) -> bool:
    """``a > b``; see :func:`op_lt`."""
    return _ordered(a, b) and a > b


def op_ge(a: Any, b: Any) -> bool:
    """``a >= b``; see :func:`op_lt`."""
    return _ordered(a, b) and a >= b


def op_in(item: Any, container: Any) -> bool:
    """``item in container``: array element (``==`` rules), map key, substring.

    False for a MISSING operand and for any other type combination.
    """
    t = type(container)
    if item is MISSING:
        return False
    if t is list:
        return any(vpl_eq(item, x) for x in container)
    if t is dict or t is str:
        return type(item) is str and item in container
    return False


def op_not_in(item: Any, container: Any) -> bool:
    """``item not in container``: False, like ``in``, for MISSING or a type mismatch."""
    t = type(container)
    if item is MISSING:
        return False
    if t is list:
        return not any(vpl_eq(item, x) for x in container)
    if t is dict or t is str:
        return type(item) is str and item not in container
    return False


def op_is(a: Any, b: Any) -> bool:
    """``a is b``: both null, or the same type and equal (``1 is 1.0`` is false)."""
    if a is MISSING or b is MISSING:
        return False
    return strict_eq(a, b)


# ----------------------------------------------------------------- arithmetic


def _binary_failure(op: str, a: Any, b: Any) -> Any:
    if a is MISSING or b is MISSING:
        return MISSING
    message = f"unsupported operand types for {op}: {type_name(a)!r} and {type_name(b)!r}"
    raise VPLRuntimeError(message)


def _unary_failure(op: str, a: Any) -> Any:
    if a is MISSING:
        return MISSING
    message = f"unsupported operand type for unary {op}: {type_name(a)!r}"
    raise VPLRuntimeError(message)


def op_add(a: Any, b: Any) -> Any:
    """``a + b``: numbers (int+int → int, else float) or string concatenation."""
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a + b
    if ta is str and tb is str:
        return a + b
    return _binary_failure("+", a, b)


def op_sub(a: Any, b: Any) -> Any:
    """``a - b`` on numbers."""
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a - b
    return _binary_failure("-", a, b)


def op_mul(a: Any, b: Any) -> Any:
    """``a * b`` on numbers (no string repetition)."""
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a * b
    return _binary_failure("*", a, b)


def op_div(a: Any, b: Any) -> Any:
    """``a / b``: int/int truncates toward zero; any float → float; ``/ 0`` → None."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        if b == 0:
            return None
        q = a // b
        if q < 0 and q * b != a:
            q += 1
        return q
    if (ta is int or ta is float) and (tb is int or tb is float):
        return None if b == 0 else a / b
    return _binary_failure("/", a, b)


def op_mod(a: Any, b: Any) -> Any:
    """``a % b``: the result takes the dividend's sign (``-7 % 3`` = -1); ``% 0`` → None."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        if b == 0:
            return None
        r = abs(a) % abs(b)
        return -r if a < 0 else r
    if (ta is int or ta is float) and (tb is int or tb is float):
        if b == 0:
            return None
        try:
            return math.fmod(a, b)
        except ValueError:  # fmod(inf, y): IEEE says NaN, Python raises
            return math.nan
    return _binary_failure("%", a, b)


def _float_pow(a: float, b: float) -> float:
    a, b = float(a), float(b)  # an int too large for a float raises OverflowError here
    try:
        return math.pow(a, b)
    except OverflowError:
        odd = b.is_integer() and int(b) % 2 == 1
        return -math.inf if a < 0 and odd else math.inf
    except ValueError:  # negative base, fractional exponent: IEEE NaN, not complex
        return math.nan


def op_pow(a: Any, b: Any) -> Any:
    """``a ** b``: int**int (exponent ≥ 0) → int; else float; ``0 ** -n`` → None."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        if b >= 0:
            if abs(a) > 1 and b * (abs(a).bit_length() - 1) > MAX_INT_BITS:
                message = f"integer result of {a} ** {b} is too large"
                raise VPLRuntimeError(message)
            return a**b
        return None if a == 0 else _float_pow(a, b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return None if a == 0 and b < 0 else _float_pow(a, b)
    return _binary_failure("**", a, b)


def op_neg(a: Any) -> Any:
    """``-a`` on a number."""
    t = type(a)
    if t is int or t is float:
        return -a
    return _unary_failure("-", a)


def op_invert(a: Any) -> Any:
    """``~a`` on an int (bitwise not)."""
    if type(a) is int:
        return ~a
    return _unary_failure("~", a)


def op_bitor(a: Any, b: Any) -> Any:
    """``a | b`` on ints."""
    if type(a) is int and type(b) is int:
        return a | b
    return _binary_failure("|", a, b)


def op_bitxor(a: Any, b: Any) -> Any:
    """``a ^ b`` on ints."""
    if type(a) is int and type(b) is int:
        return a ^ b
    return _binary_failure("^", a, b)


def op_bitand(a: Any, b: Any) -> Any:
    """``a & b`` on ints."""
    if type(a) is int and type(b) is int:
        return a & b
    return _binary_failure("&", a, b)


def _shift_count(op: str, a: int, b: int) -> None:
    if b < 0:
        message = f"negative shift count in {a} {op} {b}"
        raise VPLRuntimeError(message)
    if op == "<<" and a and a.bit_length() + b > MAX_INT_BITS:
        message = f"integer result of {a} << {b} is too large"
        raise VPLRuntimeError(message)


def op_shl(a: Any, b: Any) -> Any:
    """``a << b`` on ints; a negative count raises."""
    if type(a) is int and type(b) is int:
        _shift_count("<<", a, b)
        return a << b
    return _binary_failure("<<", a, b)


def op_shr(a: Any, b: Any) -> Any:
    """``a >> b`` on ints (arithmetic shift); a negative count raises."""
    if type(a) is int and type(b) is int:
        _shift_count(">>", a, b)
        return a >> b
    return _binary_failure(">>", a, b)


# --------------------------------------------------------------------- logic


def _not_bool(op: str, value: Any) -> VPLRuntimeError:
    message = f"operand of {op!r} must be a bool, got {type_name(value)!r}"
    return VPLRuntimeError(message)


_AND, _OR, _NOT = "and", "or", "not"


def op_and(a: Any, b: Any) -> Any:
    """``a and b`` once *a* is known not to be False (compiled code short-circuits).

    ``True and b`` → b; ``MISSING and False`` → False; ``MISSING and
    True/MISSING`` → MISSING; a non-bool, non-MISSING operand raises.
    """
    if b is not True and b is not False and b is not MISSING:
        raise _not_bool(_AND, b)
    if a is True:
        return b
    if a is MISSING:
        return False if b is False else MISSING
    if a is False:
        return False
    raise _not_bool(_AND, a)


def op_or(a: Any, b: Any) -> Any:
    """``a or b`` once *a* is known not to be True; mirror image of :func:`op_and`."""
    if b is not True and b is not False and b is not MISSING:
        raise _not_bool(_OR, b)
    if a is False:
        return b
    if a is MISSING:
        return True if b is True else MISSING
    if a is True:
        return True
    raise _not_bool(_OR, a)


def op_not(a: Any) -> Any:
    """``not a``: bool negation; MISSING stays MISSING; anything else raises."""
    if a is True:
        return False
    if a is False:
        return True
    if a is MISSING:
        return MISSING
    raise _not_bool(_NOT, a)


# ------------------------------------------------------------ index and slice


def op_index(obj: Any, index: Any) -> Any:
    """``obj[index]``: array or string by int (negative from the end), map by key.

    Out of range, a wrong type or a MISSING operand gives MISSING.
    """
    t = type(obj)
    if t is list or t is str:
        if type(index) is int and -len(obj) <= index < len(obj):
            return obj[index]
        return MISSING
    if t is dict and type(index) is str:
        return obj.get(index, MISSING)
    return MISSING


def op_slice(obj: Any, start: Any, stop: Any) -> Any:
    """``obj[start:stop]`` on an array or a string: clamped, negative bounds count
    from the end, ``start > stop`` gives an empty result; a bound of None is
    omitted. A MISSING or non-int bound, or another container, gives MISSING."""
    t = type(obj)
    if t is not list and t is not str:
        return MISSING
    if (start is not None and type(start) is not int) or (
        stop is not None and type(stop) is not int
    ):
        return MISSING
    return obj[start:stop]
