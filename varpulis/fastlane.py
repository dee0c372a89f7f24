"""A fast lane for hot POST routes, in front of a bottle app.

Per request, bottle builds its request and response objects, matches the route
table, runs hooks and plugins and assembles the header list; on the
coordinator's inject route that is more CPU than forwarding the event. A
:class:`FastLane` is the WSGI app the server runs: the POST routes registered
with :meth:`FastLane.post` are matched by one regular expression each and served
straight from the WSGI environ; every other request goes to the bottle app.

The contract is the bottle route's, which :meth:`FastLane.post` also registers
(so the plain app serves the same route, and GET on it is bottle's JSON 405):
the body limit first (413), then ``x-api-key`` in constant time (401), then the
handler; results are JSON (a dict, or bytes that already are JSON); errors are
:func:`varpulis.web.failure`'s ``{"error", "code"}`` answers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from bottle import Bottle, request, response

from varpulis.errors import Unauthorized
from varpulis.web import (
    BAD_KEY,
    DEFAULT_MAX_BODY,
    check_length,
    failure,
    key_matches,
    raw_body,
    read_body,
)
from varpulis.wire import dumps

__all__ = ["FastLane", "Handler"]

#: ``handler(*path_params, body, query_string)`` → a dict or JSON bytes.
Handler = Callable[..., "dict[str, Any] | bytes"]
_PARAM = re.compile(r"<(\w+)>")
_JSON = "application/json"


def _pattern(path: str) -> re.Pattern[str]:
    """A bottle path (``/groups/<group_id>/inject``) as a regular expression; a
    ``<name>`` matches what bottle's default wildcard does (``[^/]+``)."""
    parts = _PARAM.split(path)
    text = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)"
                   for i, part in enumerate(parts))  # fmt: skip
    return re.compile(text)


class FastLane:
    """The WSGI app: registered POST routes served directly, the rest by *app*."""

    def __init__(self, app: Bottle, api_key: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.app = app
        self._key = api_key.encode() if api_key else None
        self._routes: list[tuple[re.Pattern[str], Handler, int, bool]] = []
        self._clock, self._date = clock, (0, "")

    def _date_header(self) -> str:
        """The ``Date`` header, formatted once a second (else waitress does it per answer)."""
        second = int(self._clock())
        cached = self._date
        if cached[0] != second:
            cached = self._date = (second, formatdate(second, usegmt=True))
        return cached[1]

    def post(self, path: str, handler: Handler, *, max_body: int = DEFAULT_MAX_BODY,
             auth: bool = True) -> None:  # fmt: skip
        """Serve POST *path* (bottle syntax) with *handler*, here and in the bottle app."""
        pattern = _pattern(path)
        self._routes.append((pattern, handler, max_body, auth))
        names = list(pattern.groupindex)  # in the path's order

        def route(**params: str) -> Any:
            result = handler(*[params[n] for n in names], raw_body(), request.query_string)
            if isinstance(result, bytes):
                response.content_type = _JSON
            return result

        self.app.post(path, max_body=max_body, auth=auth)(route)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST" and self._routes:
            # the path as bottle matches it: PEP 3333's latin-1 text read as UTF-8
            path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "ignore")
            for pattern, handler, max_body, auth in self._routes:
                match = pattern.fullmatch(path)
                if match is not None:
                    status, body = self._serve(environ, match, handler, max_body, auth)
                    phrase = HTTPStatus(status).phrase
                    headers = [("Content-Type", _JSON), ("Content-Length", str(len(body))),
                               ("Date", self._date_header())]  # fmt: skip
                    start_response(f"{status} {phrase}", headers)
                    return [body]
        return self.app(environ, start_response)

    def _serve(self, environ: dict[str, Any], match: re.Match[str], handler: Handler,
               max_body: int, auth: bool) -> tuple[int, bytes]:  # fmt: skip
        try:
            check_length(environ, max_body)
            if auth and self._key is not None and not key_matches(environ, self._key):
                raise Unauthorized(BAD_KEY)
            body = read_body(environ)
            result = handler(*match.groups(), body, environ.get("QUERY_STRING", ""))
            return 200, result if isinstance(result, bytes) else dumps(result)
        except Exception as exc:
            status, error = failure(exc, f"POST {environ.get('PATH_INFO', '')}")
            return status, dumps(error)
