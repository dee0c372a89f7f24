"""The language's table of builtins (used by the validator) matches the implementation."""

from __future__ import annotations

from varpulis.compiler.builtins import BUILTINS
from varpulis.lang.signatures import BUILTINS as SIGNATURES


def test_every_builtin_is_declared_with_its_arity() -> None:
    assert sorted(BUILTINS) == sorted(SIGNATURES)
    for name, builtin in BUILTINS.items():
        assert (builtin.min_args, builtin.max_args) == SIGNATURES[name], name
