"""varpulis.memory: the cyclic GC paused for a section, re-enabled by whoever paused it."""

from __future__ import annotations

import gc

from varpulis.memory import gc_paused


def test_pauses_and_restores() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested: the inner section leaves re-enabling to the outer
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_restores_after_an_error_and_leaves_a_disabled_gc_alone() -> None:
    try:
        with gc_paused():
            raise KeyError("boom")
    except KeyError:
        pass
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # it was off before: still off
    finally:
        gc.enable()
