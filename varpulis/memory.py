"""Allocation-heavy sections: the cyclic garbage collector paused while they run.

Decoding a 10,000-event JSON body, or building a batch's outputs, allocates
tens of thousands of dicts in one go; each 700 allocations start a collection,
and the survivors are walked again by the older generations' collections. On
the coordinator's split inject-batch that was a third of its CPU. These
sections make no reference cycles, so nothing waits to be freed meanwhile.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Defer the cyclic garbage collector while a batch allocates its outputs.

    Building 100,000 output events in one go triggers collections that walk
    every live object (the engine, the input batch) and cost more than the
    batch itself; the batch path makes no reference cycles, so nothing waits
    to be freed. Safe with threads: a section that found the collector
    already paused leaves re-enabling to the one that paused it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
