"""The one error tree of Varpulis.

Every error raised on purpose derives from :class:`VarpulisError`. Each class
carries a machine ``code`` and an ``http_status``; the REST layers turn any
of them into ``{"error": message, "code": code}`` in exactly one place, and the
CLI maps them to exit codes. Messages name the offending value with ``!r`` and
list the valid choices where there are any.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "EventSyntaxError",
    "GroupNotFound",
    "InvalidGroupSource",
    "MethodNotAllowed",
    "NoWorkersAvailable",
    "NotFound",
    "PayloadTooLarge",
    "PipelineLimitReached",
    "PipelineNotFound",
    "RoutingFailed",
    "Unauthorized",
    "VPLError",
    "VPLRuntimeError",
    "VPLSemanticError",
    "VPLSyntaxError",
    "VarpulisError",
    "WorkerDeregistered",
    "WorkerNotFound",
    "caret_snippet",
    "line_col",
]


class VarpulisError(Exception):
    """Base class for every error Varpulis raises on purpose."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500

    def to_json(self) -> dict[str, Any]:
        """Return the JSON error body: ``{"error": message, "code": code}``."""
        return {"error": str(self), "code": self.code}


class BadRequest(VarpulisError):
    """The request body or its parameters are malformed."""

    code, http_status = "bad_request", 400


class Unauthorized(VarpulisError):
    """Missing or wrong ``x-api-key``."""

    code, http_status = "unauthorized", 401


class NotFound(VarpulisError):
    """A route or resource does not exist."""

    code, http_status = "not_found", 404


class PayloadTooLarge(VarpulisError):
    """A request body is over the size limit."""

    code, http_status = "payload_too_large", 413


class MethodNotAllowed(VarpulisError):
    """The path exists but not with this HTTP method."""

    code, http_status = "method_not_allowed", 405


class PipelineNotFound(NotFound):
    """No pipeline with this id on this worker."""

    code = "pipeline_not_found"

    def __init__(self, pipeline_id: str) -> None:
        super().__init__(f"pipeline not found: {pipeline_id!r}")


class PipelineLimitReached(VarpulisError):
    """The worker already runs ``--max-pipelines`` pipelines.

    429, not 503: the worker is healthy and the condition is the caller's
    load, which deleting a pipeline resolves (the original's quota answer).
    """

    code, http_status = "pipeline_limit_reached", 429


def line_col(source: str, offset: int) -> tuple[int, int]:
    """Return the 1-based (line, column) of a 0-based *offset* into *source*."""
    offset = max(0, min(offset, len(source)))
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return line, column


def caret_snippet(source: str, line: int, column: int) -> str:
    """Return the 1-based *line* of *source* with a caret under *column*."""
    lines = source.splitlines() or [""]
    text = lines[min(line, len(lines)) - 1].expandtabs(1)
    return f"{line:>4} | {text}\n     | {' ' * (column - 1)}^"


class VPLError(VarpulisError):
    """A VPL program is invalid; positions are 1-based.

    ``source`` is the full program text and ``offset`` a 0-based index into
    it, so tools can map the error back to a span; ``filename`` names the file
    when the program came from one.
    """

    code, http_status = "invalid_program", 400
    kind: ClassVar[str] = "error"

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        offset: int = 0,
        hint: str | None = None,
        filename: str | None = None,
    ) -> None:
        self.message, self.source, self.offset = message, source, offset
        self.hint, self.filename = hint, filename
        self.line, self.column = line_col(source, offset)
        where = f"{filename}:" if filename else ""
        super().__init__(f"{where}line {self.line}, column {self.column}: {message}")

    @property
    def snippet(self) -> str:
        """The offending line with a caret under the error column."""
        return caret_snippet(self.source, self.line, self.column)

    def render(self) -> str:
        """Return the message, the caret snippet and the hint, one per line."""
        out = [f"{self.kind}: {self}", self.snippet]
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        body.update(line=self.line, column=self.column, message=self.message)
        body["snippet"] = self.snippet
        if self.hint:
            body["hint"] = self.hint
        return body


class VPLSyntaxError(VPLError):
    """The source text is not valid VPL syntax."""

    kind = "syntax error"


class VPLSemanticError(VPLError):
    """The program parses but is inconsistent (unknown names, wrong arity, ...)."""

    kind = "semantic error"


class VPLRuntimeError(VarpulisError):
    """A VPL function or expression failed while processing one event.

    The runtime logs and counts it; the event's processing stops, the
    pipeline goes on.
    """

    code, http_status = "runtime_error", 500


class EventSyntaxError(VPLError):
    """An event file (``.evt``/JSONL) or event text is malformed."""

    code = "invalid_events"
    kind = "event syntax error"


# --------------------------------------------------------------------------- cluster


class WorkerNotFound(NotFound):
    """No worker with this id is registered at the coordinator."""

    code = "worker_not_found"

    def __init__(self, worker_id: str) -> None:
        super().__init__(f"worker not found: {worker_id!r}")


class WorkerDeregistered(NotFound):
    """The worker was deregistered; its heartbeats are refused until it registers again."""

    code = "worker_deregistered"

    def __init__(self, worker_id: str) -> None:
        super().__init__(f"worker {worker_id!r} was deregistered; register again to rejoin")


class GroupNotFound(NotFound):
    """No pipeline group with this id."""

    code = "group_not_found"

    def __init__(self, group_id: str) -> None:
        super().__init__(f"pipeline group not found: {group_id!r}")


class NoWorkersAvailable(VarpulisError):
    """No registered worker is ready with room for a pipeline."""

    code, http_status = "no_workers_available", 503


class RoutingFailed(VarpulisError):
    """An event could not be delivered to its target pipeline's worker."""

    code, http_status = "routing_failed", 502


class InvalidGroupSource(VarpulisError):
    """One pipeline of a group spec has invalid VPL: the VPL error, naming the pipeline."""

    code, http_status = "invalid_program", 400

    def __init__(self, pipeline: str, error: VPLError) -> None:
        self.pipeline, self.vpl_error = pipeline, error
        super().__init__(f"pipeline {pipeline!r}: {error}")

    def to_json(self) -> dict[str, Any]:
        body = self.vpl_error.to_json()
        body.update(error=str(self), code=self.code, pipeline=self.pipeline)
        return body
