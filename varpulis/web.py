"""Shared HTTP plumbing for the worker and the coordinator: bottle apps on waitress.

:func:`make_app` builds a bottle app with exactly one error plugin
(:class:`JsonApi`: dict results → JSON, :class:`~varpulis.errors.VarpulisError` →
``{"error", "code"}`` with the class's status, anything else → a logged 500), an
API-key plugin (:class:`ApiKey`, constant-time compare, opt out per route with
``auth=False``), a per-route body limit (route config ``max_body``, bytes) and JSON
404/405 handlers. :func:`json_body` decodes the request body. :func:`serve` runs an
app on waitress (optionally HTTPS) in a background thread and returns a
:class:`ServerHandle`; ``close()`` stops accepting, lets in-flight requests finish
and then closes every connection. Handlers run on waitress's worker threads; the
plugins hold no per-request state.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import waitress
from bottle import Bottle, HTTPError, HTTPResponse, request, response
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from varpulis.errors import (
    BadRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    Unauthorized,
    VarpulisError,
)
from varpulis.wire import dumps, loads

__all__ = [
    "BAD_KEY",
    "add_open_routes",
    "check_length",
    "failure",
    "key_matches",
    "read_body",
    "DEFAULT_MAX_BODY",
    "MIB",
    "ApiKey",
    "JsonApi",
    "MethodNotAllowed",
    "ServerHandle",
    "TlsConfig",
    "json_body",
    "json_response",
    "make_app",
    "parse_json_object",
    "raw_body",
    "serve",
    "wait_for_shutdown",
]

logger = logging.getLogger(__name__)

MIB = 1 << 20
#: Body limit of a route that does not set ``max_body`` in its config.
DEFAULT_MAX_BODY = MIB
_JSON = "application/json"
BAD_KEY = "missing or invalid x-api-key header"


def json_response(body: dict[str, Any], status: int = 200) -> HTTPResponse:
    """An HTTPResponse carrying *body* as JSON with *status*."""
    return HTTPResponse(dumps(body), status=status, content_type=_JSON)


class JsonApi:
    """The one error plugin: dict results become JSON, VarpulisError its JSON error.

    Installed first, so it is the outermost wrapper and also sees the errors
    raised by :class:`ApiKey` and by the body-limit check. Anything that is
    not a VarpulisError is a bug: it is logged with its traceback and answered
    500 ``internal_error`` without details.
    """

    name, api = "json_api", 2

    def apply(self, callback: Callable[..., Any], route: Any) -> Callable[..., Any]:
        max_body = int(route.config.get("max_body", DEFAULT_MAX_BODY))

        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                check_length(request.environ, max_body)
                result = callback(*args, **kwargs)
                if isinstance(result, dict):
                    result = dumps(result)
                    response.content_type = _JSON
                return result
            except HTTPResponse:
                raise
            except Exception as exc:
                status, body = failure(exc, f"{request.method} {request.path}")
                return json_response(body, status)

        return wrapper


def check_length(environ: dict[str, Any], max_body: int) -> None:
    """Raise PayloadTooLarge when the declared body is over *max_body* bytes
    (ValueError for a malformed Content-Length)."""
    length = environ.get("CONTENT_LENGTH")
    if length and int(length) > max_body:
        message = f"request body of {int(length)} bytes is over the {max_body} limit"
        raise PayloadTooLarge(message)


def key_matches(environ: dict[str, Any], key: bytes) -> bool:
    """Whether the request's ``x-api-key`` is *key*, compared in constant time."""
    given = environ.get("HTTP_X_API_KEY", "")
    # Header values arrive as latin-1 text (PEP 3333); compare bytes.
    return hmac.compare_digest(given.encode("latin-1", "replace"), key)


def failure(exc: Exception, where: str) -> tuple[int, dict[str, Any]]:
    """The status and ``{"error", "code"}`` body answering *exc* raised by a handler.

    A VarpulisError answers its own status; a ValueError that got this far is a
    malformed Content-Length (400); anything else is a bug: logged with its
    traceback (*where* names the request) and answered 500 without details.
    """
    if isinstance(exc, VarpulisError):
        return exc.http_status, exc.to_json()
    if isinstance(exc, ValueError):
        return 400, {"error": str(exc), "code": BadRequest.code}
    logger.error("unhandled error in %s", where, exc_info=exc)
    return 500, {"error": "internal server error", "code": "internal_error"}


class ApiKey:
    """Require the ``x-api-key`` header on every route unless its config says ``auth=False``.

    With no key configured the plugin is a no-op (the API is open). The
    comparison is constant-time.
    """

    name, api = "api_key", 2

    def __init__(self, key: str | None) -> None:
        self.key = key.encode() if key else None

    def apply(self, callback: Callable[..., Any], route: Any) -> Callable[..., Any]:
        key = self.key
        if key is None or not route.config.get("auth", True):
            return callback

        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not key_matches(request.environ, key):
                raise Unauthorized(BAD_KEY)
            return callback(*args, **kwargs)

        return wrapper


def _error_handler(status: int, code: str) -> Callable[[HTTPError], bytes]:
    def handler(err: HTTPError) -> bytes:
        response.content_type = _JSON
        if status == 405:
            message = f"method {request.method} not allowed on {request.path!r}"
        elif status == 404:
            message = f"no route {request.method} {request.path!r}"
        else:
            message = str(err.body) or "request failed"
        return dumps({"error": message, "code": code})

    return handler


def make_app(api_key: str | None = None) -> Bottle:
    """Return a bottle app with the JSON error plugin, the API-key plugin and JSON 4xx/5xx."""
    app = Bottle()
    # JsonApi encodes results itself; templates are unused. Fewer wrappers per request.
    app.uninstall("json")
    app.uninstall("template")
    app.install(JsonApi())  # first installed = outermost
    app.install(ApiKey(api_key))
    for status, code in ((400, "bad_request"), (404, "not_found"), (405, "method_not_allowed"),
                         (413, "payload_too_large"), (500, "internal_error")):  # fmt: skip
        app.error(status)(_error_handler(status, code))
    return app


def add_open_routes(app: Bottle, openapi: Callable[[], dict[str, Any]],
                    metrics: Callable[[], tuple[bytes, str]] | None = None) -> None:  # fmt: skip
    """Serve ``GET /openapi.json`` and, when *metrics* renders ``(body, content type)``,
    ``GET /metrics``; both without a key (probes and scrapers carry none)."""

    @app.get("/openapi.json", auth=False)
    def openapi_json() -> dict[str, Any]:
        return openapi()

    if metrics is not None:

        @app.get("/metrics", auth=False)
        def prometheus() -> HTTPResponse:
            body, content_type = metrics()
            return HTTPResponse(body, status=200, content_type=content_type)


def json_body(*, required: bool = True) -> dict[str, Any]:
    """Decode the request body as a JSON object; raise BadRequest when it is not one.

    Reads ``wsgi.input`` directly (waitress has already buffered the body and
    set ``CONTENT_LENGTH``, also for chunked requests), avoiding bottle's copy.
    An empty body is ``{}`` unless *required*.
    """
    raw = raw_body(required=required)
    return parse_json_object(raw) if raw else {}


def raw_body(*, required: bool = True) -> bytes:
    """The request body as bytes (read from ``wsgi.input``); BadRequest if empty and *required*."""
    return read_body(request.environ, required=required)


def read_body(environ: dict[str, Any], *, required: bool = True) -> bytes:
    """The body of the request *environ* describes; BadRequest if empty and *required*."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    if not raw and required:
        message = "request body is empty; expected a JSON object"
        raise BadRequest(message)
    return raw


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """*raw* decoded as a JSON object; BadRequest when it is not valid JSON or not an object."""
    try:
        body = loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        message = f"request body is not valid JSON: {exc}"
        raise BadRequest(message) from None
    if not isinstance(body, dict):
        message = f"request body must be a JSON object, got {type(body).__name__}"
        raise BadRequest(message)
    return body


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Server certificate chain and private key (PEM files)."""

    cert: str
    key: str

    def context(self) -> ssl.SSLContext:
        """A server-side SSL context; raises OSError/ssl.SSLError for bad files."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


class _TlsChannel(HTTPChannel):
    """An HTTP channel over a non-blocking TLS socket.

    waitress treats any socket error other than EWOULDBLOCK as fatal; TLS
    reports "would block" as SSLWantRead/WriteError, so reads and writes map
    those to "nothing now". The handshake runs on the first readable event.
    Decrypted bytes buffered inside OpenSSL do not wake ``select``, hence the
    loop over ``pending()``.
    """

    _handshaken = False

    def handle_read(self) -> None:
        sock: ssl.SSLSocket = self.socket  # type: ignore[assignment]
        try:
            if not self._handshaken:
                sock.do_handshake()
                self._handshaken = True
            data = sock.recv(self.adj.recv_bytes)
            while data and sock.pending():
                data += sock.recv(sock.pending())
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except (ssl.SSLError, OSError) as exc:
            logger.debug("TLS connection from %s dropped: %s", self.addr, exc)
            self.handle_close()
            return
        if data:
            self.last_activity = time.time()
            self.received(data)
        else:
            self.connected = False

    def send(self, data: bytes, do_close: bool = True) -> int:
        try:
            return self.socket.send(data)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return 0
        except (ssl.SSLError, OSError):
            if do_close:
                self.handle_close()
            return 0


class _TlsServer(TcpWSGIServer):
    channel_class = _TlsChannel
    ssl_context: ssl.SSLContext

    def accept(self) -> tuple[socket.socket, Any] | None:
        pair = super().accept()
        if pair is None:
            return None
        conn, addr = pair
        conn.setblocking(False)
        wrapped = self.ssl_context.wrap_socket(
            conn, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, addr


# --------------------------------------------------------------------------- serving


@dataclass
class ServerHandle:
    """A running server: ``url``, ``port``; ``close()`` shuts it down gracefully."""

    host: str
    port: int
    scheme: str
    _map: dict[int, Any]
    _servers: list[Any]
    _dispatcher: ThreadedTaskDispatcher
    _thread: threading.Thread
    _closed: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def _busy(self) -> bool:
        dispatcher = self._dispatcher
        with dispatcher.lock:
            if dispatcher.queue:
                return True
        for channel in list(self._map.values()):
            if getattr(channel, "requests", None) or getattr(channel, "total_outbufs_len", 0):
                return True
        return False

    def close(self, timeout: float = 10.0) -> None:
        """Stop accepting, wait up to *timeout* s for in-flight requests, close the rest.

        Idempotent and safe from any thread (but not from a request handler).
        """
        if self._closed.is_set():
            return
        self._closed.set()
        trigger = self._servers[0].trigger

        def stop_listening() -> None:
            for server in self._servers:
                wasyncore.dispatcher.close(server)  # the listener only, not the trigger

        _pull(trigger, stop_listening)
        deadline = time.monotonic() + timeout
        while self._busy() and time.monotonic() < deadline:
            time.sleep(0.01)

        def close_all() -> None:
            # Every channel, the listeners' triggers included: an empty map ends the loop.
            for channel in list(self._map.values()):
                channel.close()

        _pull(trigger, close_all)
        self._thread.join(timeout=max(1.0, deadline - time.monotonic()))
        self._dispatcher.shutdown(timeout=max(0.5, deadline - time.monotonic()))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server loop has ended; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


def _pull(trigger: Any, action: Callable[[], None]) -> None:
    """Run *action* in the server loop; directly when the loop's trigger is already closed
    (the loop has ended: nothing else touches the channels any more)."""
    try:
        trigger.pull_trigger(action)
    except OSError:
        action()


def serve(
    app: Callable[..., Any],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    tls: TlsConfig | None = None,
    threads: int = 8,
    max_request_body: int = 17 * MIB,
) -> ServerHandle:
    """Serve *app* on waitress in a daemon thread; ``port=0`` picks a free port.

    With *tls* the socket speaks HTTPS. ``max_request_body`` is waitress's own
    hard cap (its 413 is plain text); routes set lower JSON-answered limits.
    Raises OSError when the address cannot be bound.
    """
    adj_args = {
        "host": host,
        "port": port,
        "threads": threads,
        "max_request_body_size": max_request_body,
        "expose_tracebacks": False,
        "ident": "varpulis",
        "clear_untrusted_proxy_headers": True,
        # Batch bodies are megabytes: read them in large chunks and keep them in
        # memory (waitress's defaults, 8 KiB reads and a spill to a temp file
        # past 512 KiB, cost a third of batch throughput).
        "recv_bytes": 256 * 1024,
        "inbuf_overflow": max_request_body,
    }
    socket_map: dict[int, Any] = {}
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(threads)
    servers: list[Any] = []
    if tls is None:
        created = waitress.create_server(app, map=socket_map, _dispatcher=dispatcher, **adj_args)
        servers = [s for s in socket_map.values() if isinstance(s, TcpWSGIServer)] or [created]
    else:
        context = tls.context()
        adj = Adjustments(**adj_args)
        for sockinfo in adj.listen:
            server = _TlsServer.__new__(_TlsServer)
            server.ssl_context = context
            server.__init__(app, socket_map, True, None, dispatcher=dispatcher, adj=adj,
                            sockinfo=sockinfo)  # fmt: skip
            servers.append(server)
    first = servers[0]
    real_host, real_port = str(first.effective_host), int(first.effective_port)
    adj = first.adj

    def loop() -> None:
        wasyncore.loop(timeout=adj.asyncore_loop_timeout, map=socket_map,
                       use_poll=adj.asyncore_use_poll)  # fmt: skip

    thread = threading.Thread(target=loop, name=f"http-{real_port}", daemon=True)
    thread.start()
    scheme = "http" if tls is None else "https"
    return ServerHandle(real_host, real_port, scheme, socket_map, servers, dispatcher, thread)


def wait_for_shutdown(handle: ServerHandle, stop: threading.Event | None = None,
                      log: logging.Logger = logger,
                      ready: Callable[[], None] | None = None) -> int:  # fmt: skip
    """Block until SIGINT/SIGTERM (or *stop* is set); 1 if the server loop ended by itself.

    A process started by ``varpulis cluster up`` (``VARPULIS_SUPERVISOR_PID``
    in its environment) also stops when that supervisor is gone, even killed.
    The signal handlers are installed only on the main thread, and the previous
    ones are restored before returning; *ready* (print the banner, start
    background threads) runs once they are in place, so a signal sent as soon
    as the banner appears already shuts down gracefully. The caller closes the
    server afterwards.
    """
    stop = stop or threading.Event()
    previous: dict[int, Any] = {}

    def on_signal(signum: int, frame: Any) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        if ready is not None:
            ready()
        supervisor = _supervisor_pid()
        # wait() with a timeout so that signal handlers run promptly on the main thread.
        while not stop.wait(0.5):
            if handle.wait(0):
                log.error("the HTTP server loop ended unexpectedly")
                return 1
            if supervisor and not _pid_alive(supervisor):
                log.warning("the supervisor (pid %d) is gone: shutting down", supervisor)
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _supervisor_pid() -> int | None:
    try:
        return int(os.environ.get("VARPULIS_SUPERVISOR_PID", "")) or None
    except ValueError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True
