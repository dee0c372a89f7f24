"""Pipeline groups: the deploy spec, its validation, placements and the JSON views.

:func:`parse_spec` turns a ``POST /pipeline-groups`` body into a :class:`GroupSpec`
and checks everything that can be checked without a worker: names, routes (both
ends must exist; ``from_pipeline`` is ``_external`` or a pipeline of the group)
and every pipeline's VPL (parse + validate; the first error is an
:class:`~varpulis.errors.InvalidGroupSource` naming the pipeline). A
:class:`Group` holds one :class:`Placement` per pipeline; placements are mutated
only under the coordinator's lock, and ``epoch`` grows on every change so that
a networked operation can tell, when it commits, whether the placement it
planned on is still the same.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from varpulis.cluster.placement import check_strategy
from varpulis.cluster.routing import EXTERNAL, Route, family_type, find_route
from varpulis.errors import BadRequest, InvalidGroupSource, VPLError

__all__ = [
    "Group",
    "GroupSpec",
    "PipelineSpec",
    "Placement",
    "RouteSpec",
    "parse_spec",
    "pipeline_reads",
    "validate_source",
]

RUNNING, FAILED, DEPLOYING = "Running", "Failed", "Deploying"
MAX_NAME_LENGTH = 256


def validate_source(source: str) -> None:
    """Raise VPLError when *source* does not parse or validate (the worker would reject it)."""
    from varpulis.lang import parse
    from varpulis.lang.validate import validate

    validate(parse(source))


def pipeline_reads(source: str) -> frozenset[str]:
    """The event types a pipeline's streams read (stream names excluded); empty if invalid."""
    from varpulis.compiler.plan import plan_program
    from varpulis.lang import parse

    try:
        plan = plan_program(parse(source))
    except VPLError:
        return frozenset()
    return plan.event_types - {s.name for s in plan.streams}


@dataclass(frozen=True, slots=True)
class PipelineSpec:
    name: str
    source: str
    worker_affinity: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "source": self.source}
        if self.worker_affinity:
            out["worker_affinity"] = self.worker_affinity
        return out


@dataclass(frozen=True, slots=True)
class RouteSpec:
    from_pipeline: str
    to_pipeline: str
    event_types: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "from_pipeline": self.from_pipeline,
            "to_pipeline": self.to_pipeline,
            "event_types": list(self.event_types),
        }


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """A validated group spec; ``placement`` None means the coordinator's default."""

    name: str
    pipelines: tuple[PipelineSpec, ...]
    routes: tuple[RouteSpec, ...] = ()
    placement: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "pipelines": [p.to_json() for p in self.pipelines],
            "routes": [r.to_json() for r in self.routes],
        }
        if self.placement:
            out["placement"] = self.placement
        return out


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_LENGTH:
        message = (
            f"{what} must be a non-empty string of at most {MAX_NAME_LENGTH} "
            f"characters, got {value!r:.80}"
        )
        raise BadRequest(message)
    return value


def _list(body: dict[str, Any], key: str, required: bool) -> list[Any]:
    value = body.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        message = f"{key!r} must be a list, got {value!r:.80}"
        raise BadRequest(message)
    return value


def parse_spec(
    body: dict[str, Any], validate: Callable[[str], None] | None = validate_source
) -> GroupSpec:
    """The spec in *body*; BadRequest for a malformed one, InvalidGroupSource for bad VPL.

    *validate* checks one VPL source (None skips the check).
    """
    name = _name(body.get("name"), '"name"')
    pipelines: list[PipelineSpec] = []
    for i, item in enumerate(_list(body, "pipelines", True)):
        if not isinstance(item, dict):
            msg = f"pipelines[{i}] must be an object, got {item!r:.80}"
            raise BadRequest(msg)
        pname = _name(item.get("name"), f"pipelines[{i}].name")
        source = item.get("source")
        if not isinstance(source, str):
            msg = f"pipelines[{i}].source (VPL text) must be a string, got {source!r:.80}"
            raise BadRequest(msg)
        affinity = item.get("worker_affinity")
        if affinity is not None and not isinstance(affinity, str):
            msg = f"pipelines[{i}].worker_affinity must be a string, got {affinity!r:.80}"
            raise BadRequest(msg)
        if any(p.name == pname for p in pipelines):
            msg = f"pipeline name {pname!r} appears twice in the group"
            raise BadRequest(msg)
        pipelines.append(PipelineSpec(pname, source, affinity or None))
    if not pipelines:
        message = '"pipelines" must list at least one pipeline'
        raise BadRequest(message)
    names = [p.name for p in pipelines]
    routes: list[RouteSpec] = []
    for i, item in enumerate(_list(body, "routes", False)):
        if not isinstance(item, dict):
            msg = f"routes[{i}] must be an object, got {item!r:.80}"
            raise BadRequest(msg)
        source_name = _name(item.get("from_pipeline"), f"routes[{i}].from_pipeline")
        target = _name(item.get("to_pipeline"), f"routes[{i}].to_pipeline")
        for end, value in (("from_pipeline", source_name), ("to_pipeline", target)):
            if value not in names and not (end == "from_pipeline" and value == EXTERNAL):
                choices = ", ".join(
                    repr(n) for n in ([EXTERNAL] if end == "from_pipeline" else []) + names
                )
                msg = f"routes[{i}].{end} {value!r} is not one of {choices}"
                raise BadRequest(msg)
        types = item.get("event_types")
        if (
            not isinstance(types, list)
            or not types
            or not all(isinstance(t, str) and t for t in types)
        ):
            msg = f"routes[{i}].event_types must be a non-empty list of patterns, got {types!r:.80}"
            raise BadRequest(msg)
        routes.append(RouteSpec(source_name, target, tuple(types)))
    placement = body.get("placement")
    if placement is not None:
        check_strategy(placement)
    if validate is not None:  # every source before anything is deployed
        for p in pipelines:
            try:
                validate(p.source)
            except VPLError as exc:
                raise InvalidGroupSource(p.name, exc) from None
    return GroupSpec(name, tuple(pipelines), tuple(routes), placement)


@dataclass(eq=False)
class Placement:
    """Where one pipeline of a group runs. ``error`` says why a Failed one failed."""

    pipeline_name: str
    worker_id: str
    worker_address: str
    pipeline_id: str = ""
    status: str = DEPLOYING
    error: str | None = None
    epoch: int = 0

    def to_json(self) -> dict[str, Any]:
        out = {
            "pipeline_name": self.pipeline_name,
            "worker_id": self.worker_id,
            "worker_address": self.worker_address,
            "pipeline_id": self.pipeline_id,
            "status": self.status,
        }
        if self.error:
            out["error"] = self.error
        return out

    def record(self) -> dict[str, Any]:
        return {**self.to_json(), "epoch": self.epoch}


@dataclass(eq=False)
class Group:
    """A deployed group: its spec and one placement per pipeline (spec order)."""

    id: str
    spec: GroupSpec
    placements: dict[str, Placement] = field(default_factory=dict)

    @functools.cached_property
    def routes(self) -> tuple[Route, ...]:
        return tuple((r.from_pipeline, r.to_pipeline, r.event_types) for r in self.spec.routes)

    @functools.cached_property
    def pipeline_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.spec.pipelines)

    @functools.cached_property
    def forwarding(self) -> frozenset[str]:
        """Pipelines whose outputs some inter-pipeline route forwards."""
        return frozenset(r.from_pipeline for r in self.spec.routes if r.from_pipeline != EXTERNAL)

    @functools.cached_property
    def _deliveries(self) -> dict[str, tuple[str | None, str]]:
        return {}

    @functools.cached_property
    def reads(self) -> dict[str, frozenset[str]]:
        """Per pipeline, the event types its streams read."""
        return {p.name: pipeline_reads(p.source) for p in self.spec.pipelines}

    @functools.cached_property
    def renames(self) -> bool:
        """True when some ``Prefix*`` route may deliver an event under its family's name."""
        reads = self.reads
        return any(
            p.endswith("*") and p[:-1] in reads.get(target, ())
            for source, target, patterns in self.routes
            if source == EXTERNAL
            for p in patterns
        )

    def delivery(self, event_type: str) -> tuple[str | None, str]:
        """``(pipeline, type to deliver as)`` for an injected *event_type* (memoised).

        See :func:`~varpulis.cluster.routing.family_type` for the delivered type.
        """
        cache = self._deliveries
        try:
            return cache[event_type]
        except KeyError:
            pass
        target, pattern = find_route(self.routes, self.pipeline_names, event_type)
        reads = self.reads.get(target, frozenset()) if target is not None else frozenset()
        found = (target, family_type(pattern, event_type, reads))
        if len(cache) < 10_000:  # bounded: event types come from callers
            cache[event_type] = found
        return found

    def target(self, event_type: str) -> str | None:
        """The pipeline an injected *event_type* goes to (memoised; routes never change)."""
        return self.delivery(event_type)[0]

    def source(self, name: str) -> str:
        return next(p.source for p in self.spec.pipelines if p.name == name)

    @property
    def status(self) -> str:
        """``running`` (all Running), ``failed`` (none), else ``partially_running``;
        ``deploying`` while any placement is being deployed for the first time."""
        states = [p.status for p in self.placements.values()]
        if states and all(s == RUNNING for s in states):
            return "running"
        if DEPLOYING in states:
            return "deploying"
        if any(s == RUNNING for s in states):
            return "partially_running"
        return "failed"

    def to_json(self) -> dict[str, Any]:
        """The tutorial's group body."""
        return {
            "id": self.id,
            "name": self.spec.name,
            "status": self.status,
            "pipeline_count": len(self.spec.pipelines),
            "placements": [p.to_json() for p in self.placements.values()],
        }

    def topology(self) -> dict[str, Any]:
        return {
            "group_id": self.id,
            "group_name": self.spec.name,
            "pipelines": [
                {
                    "name": p.pipeline_name,
                    "worker_id": p.worker_id,
                    "worker_address": p.worker_address,
                }
                for p in self.placements.values()
            ],
            "routes": [r.to_json() for r in self.spec.routes],
        }

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "spec": self.spec.to_json(),
            "placements": [p.record() for p in self.placements.values()],
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Group:
        """The group of a :meth:`record` (sources are not re-validated)."""
        spec = parse_spec(record["spec"], validate=None)
        group = cls(record["id"], spec)
        for rec in record["placements"]:
            group.placements[rec["pipeline_name"]] = Placement(
                rec["pipeline_name"],
                rec["worker_id"],
                rec["worker_address"],
                rec.get("pipeline_id", ""),
                rec.get("status", FAILED),
                rec.get("error"),
                rec.get("epoch", 0),
            )
        return group
