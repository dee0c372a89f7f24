"""The runtime context that compiled VPL expressions and functions receive.

One :class:`EvalContext` accompanies the evaluation of one triggering event. It
carries the event itself (for ``emit`` timestamps, ``now()`` and ``Type.field``
lookups), the collector that ``emit`` statements append to (a list only inside
``.process(...)``; None elsewhere, where emitted events are dropped), the
sequence captures visible to ``alias.field``, and the step budget that bounds
``while`` loops. Compiled code only reads the context, except that it appends to
``emitted``; the runtime may reuse one context object for many events by
reassigning its attributes. Contexts belong to one thread. The ``*_member``
functions are how compiled code resolves ``a.b`` against the context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from varpulis.compiler.values import MISSING

if TYPE_CHECKING:
    from varpulis.events import Event

__all__ = [
    "DEFAULT_STEP_BUDGET",
    "EvalContext",
    "capture_count",
    "capture_member",
    "field_member",
    "value_member",
]

#: Default number of ``while`` iterations one function call may run (DESIGN §4.1.6).
DEFAULT_STEP_BUDGET = 10**8


class EvalContext:
    """State for evaluating compiled code against one triggering event.

    ``event``: the triggering :class:`~varpulis.events.Event`, or None at load
    time (top-level ``let``). ``emitted``: the list ``emit`` appends new events
    to, or None to drop them. ``captures``: sequence alias → captured event, or
    the list of captured events for a Kleene alias (latest last); read only.
    ``step_budget``: how many ``while`` iterations one call of one function may
    run before :class:`~varpulis.errors.VPLRuntimeError` is raised (each call
    gets the whole budget, read once at its entry). ``errors``: a counter the
    runtime may increment when it logs a runtime error; compiled code never
    touches it.
    """

    __slots__ = ("captures", "emitted", "errors", "event", "step_budget")

    def __init__(
        self,
        event: Event | None = None,
        *,
        emitted: list[Event] | None = None,
        captures: dict[str, Event | list[Event]] | None = None,
        step_budget: int = DEFAULT_STEP_BUDGET,
    ) -> None:
        self.event = event
        self.emitted = emitted
        self.captures: dict[str, Event | list[Event]] = {} if captures is None else captures
        self.step_budget = step_budget
        self.errors = 0

    def __repr__(self) -> str:
        collecting = "collecting" if self.emitted is not None else "not collecting"
        return f"<EvalContext event={self.event!r} {collecting} budget={self.step_budget}>"


# Member access ``a.b`` at run time; the compiler picks the entry point statically:
# a declared sequence alias → capture_member, a local or constant → value_member,
# any other name → field_member.


def field_member(fields: dict, ctx: EvalContext, a: str, b: str, dotted: str) -> Any:
    """``a.b`` for a plain name: the field literally named ``"a.b"`` (join results),
    else field ``b`` when *a* is the triggering event's type, else MISSING."""
    value = fields.get(dotted, MISSING)
    if value is MISSING and ctx.event is not None and ctx.event.event_type == a:
        return fields.get(b, MISSING)
    return value


def value_member(value: Any, fields: dict, ctx: EvalContext, a: str, b: str, dotted: str) -> Any:
    """``a.b`` for a local or constant *a*: key ``b`` of a map, else as :func:`field_member`."""
    if type(value) is dict:
        return value.get(b, MISSING)
    return field_member(fields, ctx, a, b, dotted)


def capture_member(ctx: EvalContext, fields: dict, a: str, b: str, dotted: str) -> Any:
    """``a.b`` for a sequence alias: field ``b`` of the captured event (the latest one
    of a Kleene capture); as :func:`field_member` while nothing is captured."""
    captured = ctx.captures.get(a)
    if captured is None:
        return field_member(fields, ctx, a, b, dotted)
    if type(captured) is list:
        if not captured:
            return MISSING
        captured = captured[-1]
    return captured.fields.get(b, MISSING)


def capture_count(ctx: EvalContext, a: str) -> Any:
    """``len(a)`` for a sequence alias: events captured (1 unless Kleene), MISSING if none."""
    captured = ctx.captures.get(a)
    if captured is None:
        return MISSING
    return len(captured) if type(captured) is list else 1
