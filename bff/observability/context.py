"""The record of the request being served, and the hooks deeper code reports through.

The telemetry edge layer opens a :class:`RequestRecord` for each request and makes it current
(a context variable, so tasks a request starts see it too). Code far from the edge reports to
it with the functions below; each costs a context-variable read and returns at once when no
record is open (a gateway without the layer, a unit test) or, for spans, when tracing is off:
then no OpenTelemetry code runs at all.

- :func:`note_route`: the passthrough proxy, once it has matched a route;
- :func:`note_operation`: the GraphQL app, once it knows which operation it runs;
- :func:`span`: a child span around a step (``graphql.parse``, ``graphql.execute``, ...);
- :func:`loader_batch`: around one dataloader batch (its size and its span);
- :func:`record_cache`: a cache lookup's outcome (metrics and the access log's ``cache``).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from bff.observability.tracing import parse_traceparent

if TYPE_CHECKING:
    from bff.observability.telemetry import Telemetry

__all__ = [
    "RequestRecord",
    "current_request",
    "loader_batch",
    "note_operation",
    "note_route",
    "record_cache",
    "span",
]

_current: ContextVar[RequestRecord | None] = ContextVar("bff_request_record", default=None)
_NULL: AbstractContextManager[Any] = nullcontext()


class RequestRecord:
    """What the gateway learns about one request while serving it.

    ``kind`` and ``name`` say what served it: ``("app", "web")``, ``("route", "users")``,
    ``("health", "readyz")``, ``("admin", "")`` or ``("none", "")``. ``upstream_seconds`` adds
    up the request's upstream calls (concurrent calls overlap, so it may exceed the request's
    duration). ``traceparent`` is the caller's W3C header when well-formed.
    """

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "cache",
        "headers",
        "kind",
        "name",
        "operation",
        "operation_label",
        "operation_type",
        "operations",
        "rate_limited",
        "request_id",
        "sampled",
        "status",
        "telemetry",
        "trace_id",
        "traceparent",
        "tracestate",
        "upstream_calls",
        "upstream_seconds",
    )

    def __init__(self, telemetry: Telemetry, kind: str = "none", name: str = "") -> None:
        self.telemetry = telemetry
        self.request_id: str | None = None
        self.kind = kind
        self.name = name
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.upstream_seconds = 0.0
        self.upstream_calls = 0
        self.operation: str | None = None
        self.operation_label: str | None = None
        self.operation_type: str | None = None
        self.operations = 0
        self.cache: str | None = None
        self.rate_limited = False
        self.traceparent: bytes | None = None
        self.tracestate: bytes | None = None
        self.trace_id: str | None = None
        #: The request's headers while the caller's trace context is still unread (read
        #: lazily by :meth:`resolve_trace` when nothing needed it up front).
        self.headers: list[tuple[bytes, bytes]] | None = None
        #: Whether the request's trace is recorded; spans below an unsampled one are skipped.
        self.sampled = False

    def check_traceparent(self) -> tuple[bytes, bytes, int] | None:
        """Validate :attr:`traceparent` (dropped with its ``tracestate`` when malformed) and
        take its trace id; returns it parsed."""
        if self.traceparent is None:
            return None
        parsed = parse_traceparent(self.traceparent)
        if parsed is None:
            self.traceparent = self.tracestate = None
        else:
            self.trace_id = parsed[0].decode("ascii")
        return parsed

    def resolve_trace(self) -> None:
        """Read the caller's ``traceparent``/``tracestate`` if the edge layer left them."""
        headers = self.headers
        if headers is None:
            return
        self.headers = None
        for name, value in headers:
            if name == b"traceparent":
                self.traceparent = value
            elif name == b"tracestate":
                self.tracestate = value
        self.check_traceparent()

    def open(self) -> object:
        """Make this record current; returns the token for :meth:`close`."""
        return _current.set(self)

    @staticmethod
    def close(token: object) -> None:
        _current.reset(token)  # type: ignore[arg-type]


#: ``open_record(record)`` makes ``record`` current and returns a token for
#: ``close_record(token)``: :meth:`RequestRecord.open`/``close`` without a Python call (the
#: edge layer's hot path).
open_record = _current.set
close_record = _current.reset


def current_request() -> RequestRecord | None:
    """The record of the request being served, if the telemetry layer opened one."""
    return _current.get()


def note_route(route_id: str) -> None:
    """The passthrough proxy matched route ``route_id`` for the current request."""
    record = _current.get()
    if record is not None:
        record.kind = "route"
        record.name = route_id


def note_operation(app: str, name: str | None, operation_type: str) -> None:
    """A GraphQL app selected operation ``name`` (None: anonymous) of ``operation_type``
    (``query``, ``mutation``, ``subscription``) for execution."""
    record = _current.get()
    if record is not None:
        record.telemetry.operation(record, app, name, operation_type)


def span(name: str, attributes: Mapping[str, Any] | None = None) -> AbstractContextManager[Any]:
    """A context manager timing a child span of the current one; a shared no-op one when
    tracing is off or no request is being served."""
    record = _current.get()
    if record is None:
        return _NULL
    tracing = record.telemetry.tracing
    if tracing is None or not record.sampled:
        return _NULL
    return tracing.span(name, attributes)


def loader_batch(loader: str, size: int) -> AbstractContextManager[Any]:
    """Report one dataloader batch of ``size`` keys; the returned context manager spans it."""
    record = _current.get()
    if record is None:
        return _NULL
    telemetry = record.telemetry
    if telemetry.metrics is not None:
        telemetry.metrics.loader_batch(loader, size)
    if telemetry.tracing is None or not record.sampled:
        return _NULL
    return telemetry.tracing.span(f"loader {loader}", {"bff.loader": loader, "bff.batch": size})


def record_cache(cache: str, outcome: str) -> None:
    """Report a lookup of ``cache`` (``response``, ``persisted_query``, ...) and its
    ``outcome`` (``hit``, ``miss``, ``stale``, ``bypass``, ...): counted in
    ``bff_cache_requests_total`` and, for the request's own response cache, shown in its access
    log line."""
    record = _current.get()
    if record is None:
        return
    metrics = record.telemetry.metrics
    if metrics is not None:
        metrics.cache_result(cache, outcome)
    if cache == "response" or record.cache is None:
        record.cache = outcome
