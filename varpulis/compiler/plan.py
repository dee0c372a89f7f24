"""The pipeline plan: what a VPL program runs, resolved once, picklable.

:func:`plan_program` turns a parsed (and validated) :class:`~varpulis.lang.ast.Program`
into a :class:`PipelinePlan`: the streams in declaration order, with the
names each one subscribes to (event types, other streams, the types of a
sequence's steps, a merge's or join's sources), the context each runs in, and
the program's other declarations. The plan holds AST nodes and plain data only
— no closures — so it crosses process boundaries (pickle) and every process
compiles its own callables from it (``varpulis.runtime.engine``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from varpulis.lang import ast

__all__ = ["PipelinePlan", "StreamPlan", "plan_program", "timer_type"]


def timer_type(stream: str) -> str:
    """The synthetic event type a ``timer(...)`` stream subscribes to."""
    return f"Timer_{stream}"


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """One stream: its declaration and how events reach it.

    ``subscriptions`` are the event-type (or stream) names routed to it, in a
    stable order; ``context`` is the declared context it runs in (None: the
    pipeline's inline engine); ``pattern`` is the named pattern it reads, if
    any; ``sequence`` tells whether it matches a sequence of events.
    """

    name: str
    decl: ast.StreamDecl
    subscriptions: tuple[str, ...]
    context: str | None = None
    pattern: ast.PatternDecl | None = None
    sequence: bool = False


@dataclass(frozen=True, slots=True)
class PipelinePlan:
    """Everything a pipeline runs; built by :func:`plan_program`.

    ``decls`` are the non-stream declarations (functions, constants, events,
    connectors, contexts, patterns) in source order; ``streams`` the stream
    plans in declaration order. ``source``/``filename`` locate error messages.
    """

    decls: tuple[object, ...]
    streams: tuple[StreamPlan, ...]
    connectors: dict[str, ast.ConnectorDecl] = field(default_factory=dict)
    contexts: tuple[str, ...] = ()
    patterns: dict[str, ast.PatternDecl] = field(default_factory=dict)
    source: str = ""
    filename: str | None = None

    @property
    def event_types(self) -> frozenset[str]:
        """Every name some stream subscribes to."""
        return frozenset(n for s in self.streams for n in s.subscriptions)

    def streams_in(self, context: str | None) -> tuple[StreamPlan, ...]:
        """The streams assigned to *context* (None: the inline ones)."""
        return tuple(s for s in self.streams if s.context == context)


def plan_program(program: ast.Program) -> PipelinePlan:
    """Resolve *program* into a :class:`PipelinePlan` (the program is assumed valid)."""
    patterns = {d.name: d for d in program.decls if isinstance(d, ast.PatternDecl)}
    streams = tuple(
        _plan_stream(d, patterns) for d in program.decls if isinstance(d, ast.StreamDecl)
    )
    others = tuple(d for d in program.decls if not isinstance(d, ast.StreamDecl))
    return PipelinePlan(
        decls=others,
        streams=streams,
        connectors={d.name: d for d in others if isinstance(d, ast.ConnectorDecl)},
        contexts=tuple(d.name for d in others if isinstance(d, ast.ContextDecl)),
        patterns=patterns,
        source=program.source,
        filename=program.filename,
    )


def _plan_stream(decl: ast.StreamDecl, patterns: dict[str, ast.PatternDecl]) -> StreamPlan:
    names: list[str] = []
    source = decl.source
    pattern = None
    if isinstance(source, ast.EventSource):
        pattern = patterns.get(source.name)
        if pattern is not None:
            names.extend(_pattern_types(pattern.pattern))
        else:
            names.append(source.name)
    elif isinstance(source, ast.MergeSource):
        names.extend(item.source for item in source.items)
    elif isinstance(source, ast.JoinSource):
        names.extend(source.sources)
    elif isinstance(source, ast.TimerSource):
        names.append(timer_type(decl.name))
    sequence = pattern is not None
    context = None
    for op in decl.ops:
        if isinstance(op, (ast.SeqStep, ast.Negation)):
            names.append(op.event_type)
            sequence = True
        elif op.name == "context" and op.args and isinstance(op.args[0], ast.Name):
            context = op.args[0].id
    return StreamPlan(
        name=decl.name,
        decl=decl,
        subscriptions=tuple(dict.fromkeys(names)),
        context=context,
        pattern=pattern,
        sequence=sequence,
    )


def _pattern_types(node: object) -> list[str]:
    if isinstance(node, ast.PatternItem):
        return [node.event_type]
    if isinstance(node, ast.PatternNot):
        return _pattern_types(node.item)
    if isinstance(node, ast.PatternSeq):
        return [t for item in node.items for t in _pattern_types(item)]
    if isinstance(node, (ast.PatternAnd, ast.PatternOr)):
        return _pattern_types(node.left) + _pattern_types(node.right)
    return []
