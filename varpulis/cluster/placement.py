"""Where pipelines go: pure placement functions over the registry's workers.

Candidates are the *available* workers (ready, with room) in registration order.
:func:`place` gives each pipeline of a group its worker: the ``worker_affinity``
when that worker is a candidate, else the strategy. ``round-robin`` walks the
candidates in registration order starting at the first for every group, so a
group's p1→w0, p2→w1, p3→w0, p4→w1 (the tutorial's Part 8) holds whatever was
deployed before; ``least-loaded`` takes the candidate with the fewest pipelines
(ties: registration order). Loads include the group's own earlier placements,
and a worker that fills up stops being a candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from varpulis.errors import BadRequest, NoWorkersAvailable

__all__ = ["STRATEGIES", "Candidate", "least_loaded", "place"]

STRATEGIES = ("round-robin", "least-loaded")


class Candidate(Protocol):
    """What placement reads of a worker."""

    @property
    def id(self) -> str: ...

    @property
    def load(self) -> int: ...

    @property
    def max_pipelines(self) -> int: ...


def check_strategy(strategy: object) -> str:
    """*strategy* when it is one of :data:`STRATEGIES`, else BadRequest."""
    if strategy not in STRATEGIES:
        message = f"placement strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}"
        raise BadRequest(message)
    return strategy  # type: ignore[return-value]


def least_loaded(candidates: Sequence[Candidate], extra: dict[str, int] | None = None) -> str:
    """Id of the candidate with the lowest load (+ *extra*), first in order on ties."""
    extra = extra or {}
    return min(candidates, key=lambda w: w.load + extra.get(w.id, 0)).id


def place(
    affinities: Sequence[str | None], candidates: Sequence[Candidate], strategy: str
) -> list[str]:
    """One worker id per pipeline (given by its affinity, possibly None).

    Raises NoWorkersAvailable when there are no candidates, or when every
    candidate fills up before all pipelines are placed.
    """
    extra: dict[str, int] = {}
    cursor = 0
    out: list[str] = []
    for affinity in affinities:
        room = [w for w in candidates if w.load + extra.get(w.id, 0) < w.max_pipelines]
        if not room:
            message = "no workers available for deployment: " + (
                "none is registered and ready"
                if not candidates
                else "every ready worker is at max_pipelines"
            )
            raise NoWorkersAvailable(message)
        chosen = next((w.id for w in room if w.id == affinity), None)
        if chosen is None:
            if strategy == "least-loaded":
                chosen = least_loaded(room, extra)
            else:
                chosen = room[cursor % len(room)].id
                cursor += 1
        extra[chosen] = extra.get(chosen, 0) + 1
        out.append(chosen)
    return out
